// Package yamlstream cuts a stream of YAML documents into its documents,
// the one way every reader of multi-document YAML in the product does it:
// `ssi-webhook inject`, `ssi-agent fetch --spc` and the chart's rendering
// (hack/render and the chart tests).
//
// The rule is YAML's document markers, recognised on their own line:
//
//   - A line beginning with "---" followed by the end of the line or a
//     white-space character (space or tab) starts a document. What follows
//     on that line may only be white space or a comment ("--- # x",
//     "---\t# x"); other content ("--- !tag", "--- |", "--- {a: 1}") is
//     refused with its line number, as Kubernetes' own reader refuses it.
//   - A line beginning with "..." followed by the same ends a document; the
//     lines after it up to the next "---" are the next document.
//   - Anything else is content: "----", "---x", "---#x", an indented
//     "  ---". A marker at the start of a line is a marker even inside what
//     looks like a block scalar: YAML forbids such a line in any scalar, so
//     it ends the document there too.
//
// Documents holding only white space and comments are left out. Carriage
// returns of CRLF line ends are removed. Directives (%YAML) are not
// recognised; Kubernetes manifests do not use them.
//
// Against k8s.io/apimachinery's YAMLReader (kubectl's splitter), the only
// differences are lines YAML does not read as markers: the YAMLReader
// refuses "----" and "---x" and splits on "---#x"; here they are content.
// It has no "..." either (it leaves the line in the document).
package yamlstream

import (
	"bytes"
	"fmt"
)

// Document is one document of a stream.
type Document struct {
	// Line is the line of the stream, counted from 1, on which Text
	// begins: the line after the marker, or 1 for a first document
	// without one. Parsers' line numbers within Text add Line-1.
	Line int
	// Text is the document's lines, each ending in a newline.
	Text []byte
}

// Split returns the documents of stream.
func Split(stream []byte) ([]Document, error) {
	var (
		docs  []Document
		cur   bytes.Buffer
		start = 1
	)
	flush := func(next int) {
		if !blank(cur.Bytes()) {
			docs = append(docs, Document{Line: start, Text: bytes.Clone(cur.Bytes())})
		}
		cur.Reset()
		start = next
	}
	for n := 1; len(stream) > 0; n++ {
		var line []byte
		if i := bytes.IndexByte(stream, '\n'); i >= 0 {
			line, stream = stream[:i], stream[i+1:]
		} else {
			line, stream = stream, nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if marker(line) {
			if rest := bytes.TrimLeft(line[3:], " \t"); len(rest) > 0 && rest[0] != '#' {
				return nil, fmt.Errorf("line %d: %q after the document marker %q: only a comment may follow it; start the document on the next line", n, rest, line[:3])
			}
			flush(n + 1)
			continue
		}
		cur.Write(line)
		cur.WriteByte('\n')
	}
	flush(0)
	return docs, nil
}

// marker reports whether line begins with a document marker ("---" or
// "...") that YAML reads as one: followed by the end of the line or white
// space.
func marker(line []byte) bool {
	if !bytes.HasPrefix(line, []byte("---")) && !bytes.HasPrefix(line, []byte("...")) {
		return false
	}
	return len(line) == 3 || line[3] == ' ' || line[3] == '\t'
}

// blank reports whether text holds only white space and comments.
func blank(text []byte) bool {
	for _, l := range bytes.Split(text, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			return false
		}
	}
	return true
}
