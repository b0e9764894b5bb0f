package plan

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// The renderers below read only the Plan value, which is exactly what
// WriteJSON writes: no view shows anything the JSON does not carry.

// WriteJSON writes the plan as indented JSON.
func WriteJSON(w io.Writer, p *Plan) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(p)
}

// ReadJSON reads a plan written by WriteJSON.
func ReadJSON(r io.Reader) (*Plan, error) {
	var p Plan
	if err := json.NewDecoder(r).Decode(&p); err != nil {
		return nil, err
	}
	if p.Format != Format {
		return nil, fmt.Errorf("plan format %q, want %q", p.Format, Format)
	}
	return &p, nil
}

func header(p *Plan) string {
	toBuild, cached := p.Counts()
	return fmt.Sprintf("%d nodes: %d to build, %d cached", len(p.Nodes), toBuild, cached)
}

func extends(p *Plan) string {
	if len(p.Files) <= 1 {
		return ""
	}
	return " (extends " + strings.Join(p.Files[1:], ", ") + ")"
}

// WriteText writes the plan as a table for a terminal.
func WriteText(w io.Writer, p *Plan) error {
	fmt.Fprintf(w, "Plan for %s from %s%s\n%s\n", p.Name, p.Manifest, extends(p), header(p))
	for _, note := range p.Notes {
		fmt.Fprintf(w, "Note: %s\n", note)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tKEY\tAFTER\tSTATUS\tWHAT\tREASON")
	for _, n := range p.Nodes {
		reason := n.Reason
		if n.Status == Cached {
			reason = ""
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", n.ID, n.Key.Short(), dash(strings.Join(n.Parents, ",")), n.Status, n.Summary, reason)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// WriteMarkdown writes the plan as a table fit for a pull-request comment.
func WriteMarkdown(w io.Writer, p *Plan) error {
	fmt.Fprintf(w, "### imgplan plan: `%s`\n\n", p.Name)
	fmt.Fprintf(w, "From `%s`%s. %s.\n\n", p.Manifest, mdEscape(extends(p)), header(p))
	for _, note := range p.Notes {
		fmt.Fprintf(w, "> %s\n\n", mdEscape(note))
	}
	fmt.Fprintln(w, "| Node | Key | After | Status | What | Reason |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, n := range p.Nodes {
		status := "**to build**"
		reason := mdEscape(n.Reason)
		if n.Status == Cached {
			status, reason = "cached", ""
		}
		fmt.Fprintf(w, "| `%s` | `%s` | %s | %s | %s | %s |\n",
			n.ID, n.Key.Short(), mdEscape(strings.Join(n.Parents, ", ")), status, mdEscape(n.Summary), reason)
	}
	return nil
}

func mdEscape(s string) string {
	r := strings.NewReplacer("|", `\|`, "\n", " ", "*", `\*`, "_", `\_`, "<", "&lt;", ">", "&gt;")
	return r.Replace(s)
}

// WriteDOT writes the DAG as Graphviz DOT; cached nodes are filled grey.
func WriteDOT(w io.Writer, p *Plan) error {
	fmt.Fprintf(w, "digraph %q {\n", p.Name)
	fmt.Fprintln(w, "  rankdir=LR;")
	fmt.Fprintln(w, `  node [shape=box, fontname="monospace"];`)
	for _, n := range p.Nodes {
		style := ""
		if n.Status == Cached {
			style = `, style=filled, fillcolor="#dddddd"`
		}
		fmt.Fprintf(w, "  %q [label=%q%s];\n", n.ID, n.ID+"\n"+n.Key.Short(), style)
	}
	for _, n := range p.Nodes {
		for _, parent := range n.Parents {
			fmt.Fprintf(w, "  %q -> %q;\n", parent, n.ID)
		}
	}
	fmt.Fprintln(w, "}")
	return nil
}
