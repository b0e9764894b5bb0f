package manifest

// Meta records where a mapping was written and where the value of each of
// its keys is. Every type decoded from a YAML mapping embeds it, so that
// positions travel with values through extends merges and --set overrides,
// and validation can point at the exact key that is wrong.
type Meta struct {
	pos    Position
	path   string // where the mapping sits in its file ("files[2]")
	fields map[string]Position
	// bad marks a value written as something other than a mapping: the
	// decoder reported that, and validation leaves the empty struct alone.
	bad bool
}

// Pos is the position of the mapping itself.
func (m Meta) Pos() Position { return m.pos }

// At is the position of the value written under key, or of the mapping when
// the key was not written.
func (m Meta) At(key string) Position {
	if p, ok := m.fields[key]; ok {
		return p
	}
	return m.pos
}

// Item is the position of a scalar item of the list under key (the last
// one with that value), or of the list when it is not known.
func (m Meta) Item(key, value string) Position {
	if p, ok := m.fields[key+"\x00"+value]; ok {
		return p
	}
	return m.At(key)
}

// written reports whether the mapping was written (or built by --set),
// as opposed to a zero value standing for a missing section.
func (m Meta) written() bool { return m.pos.Line > 0 && !m.bad }

// Path is where the mapping sits in the file that wrote it, like
// "files[2]" or "bootstrap"; "" for the document itself.
func (m Meta) Path() string { return m.path }

// Has reports whether key was written (even with an empty or null value).
func (m Meta) Has(key string) bool {
	_, ok := m.fields[key]
	return ok
}

func (m *Meta) meta() *Meta { return m }

// markItem records where a scalar list item under key was written.
func (m *Meta) markItem(key, value string, pos Position) {
	m.mark(key+"\x00"+value, pos)
}

// mark records that key was written at pos.
func (m *Meta) mark(key string, pos Position) {
	if m.fields == nil {
		m.fields = map[string]Position{}
	} else {
		// Meta values are copied by merges; never write through a shared map.
		cp := make(map[string]Position, len(m.fields)+1)
		for k, v := range m.fields {
			cp[k] = v
		}
		m.fields = cp
	}
	m.fields[key] = pos
}

type hasMeta interface{ meta() *Meta }
