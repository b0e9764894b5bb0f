package diff

import (
	"fmt"
	"strings"
)

// maxDiffLines bounds a text diff; a longer one ends with a count of the
// lines left out.
const maxDiffLines = 20

// lineDiff returns the changed lines of a and b, "-" for removed and "+"
// for added, from a longest common subsequence of lines.
func lineDiff(a, b string) string {
	la, lb := splitLines(a), splitLines(b)
	// Common prefix and suffix first: most edits are small.
	p := 0
	for p < len(la) && p < len(lb) && la[p] == lb[p] {
		p++
	}
	s := 0
	for s < len(la)-p && s < len(lb)-p && la[len(la)-1-s] == lb[len(lb)-1-s] {
		s++
	}
	ma, mb := la[p:len(la)-s], lb[p:len(lb)-s]
	var out []string
	if len(ma)*len(mb) > 1<<20 {
		for _, l := range ma {
			out = append(out, "-"+l)
		}
		for _, l := range mb {
			out = append(out, "+"+l)
		}
	} else {
		out = lcsDiff(ma, mb)
	}
	if len(out) > maxDiffLines {
		n := len(out) - maxDiffLines
		out = append(out[:maxDiffLines], fmt.Sprintf("… %d more lines", n))
	}
	return strings.Join(out, "\n")
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func lcsDiff(a, b []string) []string {
	n, m := len(a), len(b)
	t := make([][]int, n+1)
	for i := range t {
		t[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				t[i][j] = t[i+1][j+1] + 1
			} else {
				t[i][j] = max(t[i+1][j], t[i][j+1])
			}
		}
	}
	var out []string
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			i, j = i+1, j+1
		case i < n && (j == m || t[i+1][j] >= t[i][j+1]):
			out = append(out, "-"+a[i])
			i++
		default:
			out = append(out, "+"+b[j])
			j++
		}
	}
	return out
}
