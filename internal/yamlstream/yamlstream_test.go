package yamlstream

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
)

type doc struct {
	line int
	text string
}

func docs(ds []Document) []doc {
	out := []doc{}
	for _, d := range ds {
		out = append(out, doc{d.Line, string(d.Text)})
	}
	return out
}

func TestSplit(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    []doc
		wantErr string
	}{
		"empty stream":              {in: "", want: []doc{}},
		"one document":              {in: "a: 1\nb: 2\n", want: []doc{{1, "a: 1\nb: 2\n"}}},
		"no final newline":          {in: "a: 1", want: []doc{{1, "a: 1\n"}}},
		"leading marker":            {in: "---\na: 1\n", want: []doc{{2, "a: 1\n"}}},
		"two documents":             {in: "a: 1\n---\nb: 2\n", want: []doc{{1, "a: 1\n"}, {3, "b: 2\n"}}},
		"marker with a space":       {in: "a: 1\n--- \nb: 2\n", want: []doc{{1, "a: 1\n"}, {3, "b: 2\n"}}},
		"marker, space, comment":    {in: "a: 1\n--- # next\nb: 2\n", want: []doc{{1, "a: 1\n"}, {3, "b: 2\n"}}},
		"marker, tab, comment":      {in: "a: 1\n---\t# next\nb: 2\n", want: []doc{{1, "a: 1\n"}, {3, "b: 2\n"}}},
		"marker, tab":               {in: "a: 1\n---\t\nb: 2\n", want: []doc{{1, "a: 1\n"}, {3, "b: 2\n"}}},
		"marker at the end":         {in: "a: 1\n---", want: []doc{{1, "a: 1\n"}}},
		"four dashes are content":   {in: "a: 1\n----\nb: 2\n", want: []doc{{1, "a: 1\n----\nb: 2\n"}}},
		"dashes and text":           {in: "---x\n", want: []doc{{1, "---x\n"}}},
		"comment without a blank":   {in: "a: 1\n---#x\n", want: []doc{{1, "a: 1\n---#x\n"}}},
		"indented marker":           {in: "a: |\n  x\n  ---\n  y\n", want: []doc{{1, "a: |\n  x\n  ---\n  y\n"}}},
		"marker ends block scalar":  {in: "a: |\n  x\n---\nb: 1\n", want: []doc{{1, "a: |\n  x\n"}, {4, "b: 1\n"}}},
		"CRLF":                      {in: "a: 1\r\n---\r\nb: 2\r\n", want: []doc{{1, "a: 1\n"}, {3, "b: 2\n"}}},
		"CRLF, marker and comment":  {in: "a: 1\r\n---\t# c\r\nb: 2\r\n", want: []doc{{1, "a: 1\n"}, {3, "b: 2\n"}}},
		"empty documents dropped":   {in: "---\n---\n\na: 1\n---\n# only a comment\n  \n---\n", want: []doc{{3, "\na: 1\n"}}},
		"comments kept in a doc":    {in: "# head\na: 1 # tail\n", want: []doc{{1, "# head\na: 1 # tail\n"}}},
		"document end":              {in: "a: 1\n...\n", want: []doc{{1, "a: 1\n"}}},
		"document end, then bare":   {in: "a: 1\n...\nb: 2\n", want: []doc{{1, "a: 1\n"}, {3, "b: 2\n"}}},
		"document end, then marker": {in: "a: 1\n... # end\n---\nb: 2\n", want: []doc{{1, "a: 1\n"}, {4, "b: 2\n"}}},
		"dots are content":          {in: "a: ....\n....\n", want: []doc{{1, "a: ....\n....\n"}}},
		"tag after the marker":      {in: "a: 1\n--- !tag\nb: 2\n", wantErr: `line 2: "!tag" after the document marker "---"`},
		"block scalar after marker": {in: "--- |\n  text\n", wantErr: `line 1: "|" after the document marker "---"`},
		"mapping after the marker":  {in: "x: 1\n\n---\t{a: 1}\n", wantErr: `line 3: "{a: 1}" after the document marker "---"`},
		"content after the end":     {in: "a: 1\n... b\n", wantErr: `line 2: "b" after the document marker "..."`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Split([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q; documents %v", err, tc.wantErr, docs(got))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(docs(got), tc.want) {
				t.Errorf("documents\n got %+v\nwant %+v", docs(got), tc.want)
			}
		})
	}
}

// TestAgainstKubernetesReader compares Split with k8s.io/apimachinery's
// YAMLReader (what kubectl splits with): the same documents where YAML
// and that reader agree, and the documented differences where they do
// not, so that a change of either side shows here.
func TestAgainstKubernetesReader(t *testing.T) {
	k8s := func(in string) ([]string, error) {
		r := k8syaml.NewYAMLReader(bufio.NewReader(strings.NewReader(in)))
		var out []string
		for {
			d, err := r.Read()
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			if err != nil {
				return out, err
			}
			// It leaves a leading marker in the document it starts.
			s := strings.ReplaceAll(string(d), "\r", "")
			if first, rest, _ := strings.Cut(s, "\n"); marker([]byte(first)) {
				s = rest
			}
			if !blank([]byte(s)) {
				out = append(out, s)
			}
		}
	}
	ours := func(in string) ([]string, error) {
		ds, err := Split([]byte(in))
		var out []string
		for _, d := range ds {
			out = append(out, string(d.Text))
		}
		return out, err
	}
	same := map[string]string{
		"plain":            "a: 1\n---\nb: 2\n",
		"leading marker":   "---\na: 1\n",
		"space and tab":    "a: 1\n--- \nb: 2\n---\t# c\nc: 3\n",
		"CRLF":             "a: 1\r\n---\r\nb: 2\r\n",
		"empty documents":  "---\n---\na: 1\n---\n# comment only\n",
		"block scalar":     "a: |\n  x\n  ---\n---\nb: 1\n",
		"refused: tag":     "a: 1\n--- !tag\nb: 2\n",
		"refused: mapping": "--- {a: 1}\n",
	}
	for name, in := range same {
		t.Run(name, func(t *testing.T) {
			want, wantErr := k8s(in)
			got, err := ours(in)
			if (err != nil) != (wantErr != nil) || (err == nil && !reflect.DeepEqual(got, want)) {
				t.Errorf("Split %q, %v; YAMLReader %q, %v", got, err, want, wantErr)
			}
		})
	}
	differ := map[string]struct{ in, why string }{
		"four dashes":       {"a: 1\n----\n", "YAMLReader refuses it, YAML reads content"},
		"dashes and text":   {"a: 1\n---x\n", "YAMLReader refuses it, YAML reads content"},
		"comment, no blank": {"a: 1\n---#x\nb: 2\n", "YAMLReader splits, YAML reads content"},
		"document end":      {"a: 1\n...\nb: 2\n", "YAMLReader keeps ... in one document"},
	}
	for name, tc := range differ {
		t.Run(name, func(t *testing.T) {
			want, wantErr := k8s(tc.in)
			got, err := ours(tc.in)
			if err == nil && wantErr == nil && reflect.DeepEqual(got, want) {
				t.Errorf("no longer a difference (%s): both give %q; update the package documentation", tc.why, got)
			}
		})
	}
}

func TestSplitKeepsText(t *testing.T) {
	// Bytes that are not line structure pass through unchanged.
	in := []byte("a: \"x\ty\"\nb: 'z\\n'\n")
	ds, err := Split(in)
	if err != nil || len(ds) != 1 || !bytes.Equal(ds[0].Text, in) {
		t.Fatalf("Split = %+v, %v", docs(ds), err)
	}
}
