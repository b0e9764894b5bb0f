package diff

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes the diff as indented JSON.
func WriteJSON(w io.Writer, d *Diff) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(d)
}

var opSign = map[string]string{Added: "+", Removed: "-", Changed: "~"}

func fieldText(f Field) string {
	return fmt.Sprintf("%s: %s → %s", f.Name, dash(f.Old), dash(f.New))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// counts returns how many stages rebuild (new ones included) and how
// many stay cached.
func (d *Diff) counts() (rebuild, same int) {
	for _, s := range d.Stages {
		switch s.Status {
		case Rebuild, New:
			rebuild++
		case Same:
			same++
		}
	}
	return rebuild, same
}

// WriteText writes the diff for a terminal.
func WriteText(w io.Writer, d *Diff) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Diff %s → %s\n", d.Old, d.New)
	if len(d.Changes) == 0 {
		b.WriteString("\nNo changes to the manifest.\n")
	}
	section := ""
	for _, c := range d.Changes {
		if c.Section != section {
			section = c.Section
			fmt.Fprintf(&b, "\n%s\n", section)
		}
		fmt.Fprintf(&b, "  %s %s\n", opSign[c.Op], c.Item)
		for _, f := range c.Fields {
			fmt.Fprintf(&b, "      %s\n", fieldText(f))
		}
		if c.Text != "" {
			for _, l := range strings.Split(c.Text, "\n") {
				fmt.Fprintf(&b, "      %s\n", l)
			}
		}
	}
	rebuild, same := d.counts()
	fmt.Fprintf(&b, "\nStages: %d rebuild, %d stay cached\n", rebuild, same)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, s := range d.Stages {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", s.Status, s.ID, keys(s), s.Reason)
	}
	tw.Flush()
	if d.Built != nil {
		writeBuiltText(&b, d.Built)
	}
	_, err := io.WriteString(w, trimLines(b.String()))
	return err
}

func keys(s Stage) string {
	switch {
	case s.OldKey == "":
		return s.NewKey
	case s.NewKey == "":
		return s.OldKey
	case s.OldKey == s.NewKey:
		return s.NewKey
	}
	return s.OldKey + " → " + s.NewKey
}

// trimLines drops the trailing blanks tabwriter leaves.
func trimLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}

// collapseAfter is how many rows a Markdown table shows before the rest
// go into a collapsed <details> block.
const collapseAfter = 15

// WriteMarkdown writes the diff as a pull-request comment: compact
// tables, text diffs and long lists collapsed.
func WriteMarkdown(w io.Writer, d *Diff) error {
	var b strings.Builder
	rebuild, same := d.counts()
	fmt.Fprintf(&b, "### imgplan diff: `%s` → `%s`\n\n", d.Old, d.New)
	fmt.Fprintf(&b, "%s; %d stages rebuild, %d stay cached.\n", plural(len(d.Changes), "change"), rebuild, same)
	if len(d.Changes) > 0 {
		rows := make([]string, 0, len(d.Changes))
		for _, c := range d.Changes {
			var det []string
			for _, f := range c.Fields {
				det = append(det, mdCode(fieldText(f)))
			}
			if c.Text != "" {
				det = append(det, fmt.Sprintf("<details><summary>diff</summary><pre>%s</pre></details>", htmlEscape(c.Text)))
			}
			rows = append(rows, fmt.Sprintf("| %s | %s | `%s` | %s |", c.Section, c.Op, mdEscape(c.Item), strings.Join(det, "<br>")))
		}
		b.WriteString("\n")
		writeTable(&b, "| Section | Change | Item | Details |\n|---|---|---|---|", rows, "more changes")
	}
	rows := make([]string, 0, len(d.Stages))
	for _, s := range d.Stages {
		rows = append(rows, fmt.Sprintf("| `%s` | %s | `%s` | %s |", s.ID, s.Status, keys(s), mdEscape(s.Reason)))
	}
	b.WriteString("\n<details><summary>Stages</summary>\n\n")
	b.WriteString("| Stage | Status | Key | Reason |\n|---|---|---|---|\n")
	for _, r := range rows {
		b.WriteString(r + "\n")
	}
	b.WriteString("\n</details>\n")
	if d.Built != nil {
		writeBuiltMarkdown(&b, d.Built)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeTable writes a table, the rows past collapseAfter in a collapsed
// second table.
func writeTable(b *strings.Builder, head string, rows []string, more string) {
	b.WriteString(head + "\n")
	for i, r := range rows {
		if i == collapseAfter {
			fmt.Fprintf(b, "\n<details><summary>%d %s</summary>\n\n%s\n", len(rows)-collapseAfter, more, head)
		}
		b.WriteString(r + "\n")
	}
	if len(rows) > collapseAfter {
		b.WriteString("\n</details>\n")
	}
}

func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

func mdCode(s string) string { return "`" + strings.ReplaceAll(mdEscape(s), "`", "'") + "`" }

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "|", "&#124;", "\n", "<br>").Replace(s)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
