package render

import (
	"fmt"
	"strconv"
	"strings"
	"text/template/parse"
)

// check walks one parse tree: every function must be known, object must be
// called with one constant name of the class, required and fail with a
// constant message, and every {{template}} must name a tree of the set.
func check(t Template, tr *parse.Tree, trees map[string]*parse.Tree, objects map[string]bool, deps map[string]bool) error {
	var walk func(n parse.Node) error
	at := func(n parse.Node, format string, args ...any) error {
		loc, ctx := tr.ErrorContext(n)
		e := &Error{Path: t.Path, Context: truncate(ctx), Cause: fmt.Sprintf(format, args...)}
		// loc is "name:line:col" with a 0-based col.
		if i := strings.LastIndexByte(loc, ':'); i > 0 {
			if j := strings.LastIndexByte(loc[:i], ':'); j >= 0 {
				// ErrorContext formats both as decimal integers.
				e.Line, _ = strconv.Atoi(loc[j+1 : i])
				e.Col, _ = strconv.Atoi(loc[i+1:])
				e.Col++
			}
		}
		return e
	}
	pipe := func(p *parse.PipeNode) error {
		if p == nil {
			return nil
		}
		for i, cmd := range p.Cmds {
			if err := calls(cmd, i > 0, at, objects, deps); err != nil {
				return err
			}
			for j, a := range cmd.Args {
				if id, ok := a.(*parse.IdentifierNode); ok && j > 0 && constArgs[id.Ident] {
					return at(id, "%s must be called in its own parentheses with its quoted argument", id.Ident)
				}
				if err := walk(a); err != nil {
					return err
				}
			}
		}
		return nil
	}
	walk = func(n parse.Node) error {
		switch n := n.(type) {
		case nil:
			return nil
		case *parse.ListNode:
			if n == nil {
				return nil
			}
			for _, c := range n.Nodes {
				if err := walk(c); err != nil {
					return err
				}
			}
		case *parse.ActionNode:
			return pipe(n.Pipe)
		case *parse.PipeNode:
			return pipe(n)
		case *parse.IfNode:
			return branch(&n.BranchNode, pipe, walk)
		case *parse.RangeNode:
			return branch(&n.BranchNode, pipe, walk)
		case *parse.WithNode:
			return branch(&n.BranchNode, pipe, walk)
		case *parse.TemplateNode:
			if trees[n.Name] == nil {
				return at(n, "template %q is not defined in this template", n.Name)
			}
			return pipe(n.Pipe)
		case *parse.IdentifierNode:
			if !known(n.Ident) {
				if n.Ident == "call" {
					return at(n, "function %q is not available in templates", n.Ident)
				}
				return at(n, "function %q is not defined (see docs/templates.md)", n.Ident)
			}
		case *parse.ChainNode:
			return walk(n.Node)
		}
		return nil
	}
	if tr.Root == nil {
		return nil
	}
	return walk(tr.Root)
}

func branch(b *parse.BranchNode, pipe func(*parse.PipeNode) error, walk func(parse.Node) error) error {
	if err := pipe(b.Pipe); err != nil {
		return err
	}
	if err := walk(b.List); err != nil {
		return err
	}
	if b.ElseList != nil {
		return walk(b.ElseList)
	}
	return nil
}

type atFunc func(n parse.Node, format string, args ...any) error

// constArgs are the functions whose first argument must be a constant.
// The paths of jsonField and yamlField are quoted in their errors.
var constArgs = map[string]bool{"object": true, "required": true, "fail": true, "jsonField": true, "yamlField": true}

// calls checks the functions whose arguments must be constants.
func calls(cmd *parse.CommandNode, piped bool, at atFunc, objects, deps map[string]bool) error {
	id, ok := cmd.Args[0].(*parse.IdentifierNode)
	if !ok {
		return nil
	}
	switch id.Ident {
	case "object":
		if len(cmd.Args) != 2 || piped {
			return at(id, "object takes one quoted object name (and nothing piped into it)")
		}
		s, ok := cmd.Args[1].(*parse.StringNode)
		if !ok {
			return at(cmd.Args[1], "the object name must be a quoted constant, so that its use is known before rendering")
		}
		if objects != nil && !objects[s.Text] {
			return at(s, "object %q is not a file of the class's objects", s.Text)
		}
		deps[s.Text] = true
	case "required", "fail", "jsonField", "yamlField":
		what := "message"
		if id.Ident == "jsonField" || id.Ident == "yamlField" {
			what = "path"
		}
		if len(cmd.Args) < 2 {
			return at(id, "%s needs a quoted %s", id.Ident, what)
		}
		if _, ok := cmd.Args[1].(*parse.StringNode); !ok {
			return at(cmd.Args[1], "the %s of %s must be a quoted constant: it is printed in errors, which never hold a value", what, id.Ident)
		}
	}
	return nil
}

// rangeGuard is the function guardRanges appends to every range
// pipeline; its name cannot be written in a template (Compile refuses it as
// unknown), so only the rewrite calls it.
const rangeGuard = "_rangeGuard"

// guardRanges rewrites every {{range PIPELINE}} into
// {{range PIPELINE | _rangeGuard}}, so that each range's size is charged to
// the render's iteration budget before it runs.
func guardRanges(n parse.Node) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			guardRanges(c)
		}
	case *parse.IfNode:
		guardRanges(n.List)
		guardRanges(n.ElseList)
	case *parse.WithNode:
		guardRanges(n.List)
		guardRanges(n.ElseList)
	case *parse.RangeNode:
		if p := n.Pipe; p != nil && len(p.Cmds) > 0 {
			id := parse.NewIdentifier(rangeGuard).SetPos(p.Position())
			p.Cmds = append(p.Cmds, &parse.CommandNode{NodeType: parse.NodeCommand, Pos: p.Position(), Args: []parse.Node{id}})
		}
		guardRanges(n.List)
		guardRanges(n.ElseList)
	}
}

// templateCalls collects the names of the {{template}} calls under n.
func templateCalls(n parse.Node, out map[string]bool) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			templateCalls(c, out)
		}
	case *parse.IfNode:
		templateCalls(n.List, out)
		templateCalls(n.ElseList, out)
	case *parse.RangeNode:
		templateCalls(n.List, out)
		templateCalls(n.ElseList, out)
	case *parse.WithNode:
		templateCalls(n.List, out)
		templateCalls(n.ElseList, out)
	case *parse.TemplateNode:
		out[n.Name] = true
	}
}

// recursion returns a template of trees that calls itself, directly or
// not, or "". Recursion is refused: only text/template's depth limit
// (100000 calls) would stop it.
func recursion(trees map[string]*parse.Tree, names []string) string {
	calls := map[string]map[string]bool{}
	for _, n := range names {
		calls[n] = map[string]bool{}
		templateCalls(trees[n].Root, calls[n])
	}
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var visit func(string) bool
	visit = func(n string) bool {
		switch state[n] {
		case visiting:
			return true
		case done:
			return false
		}
		state[n] = visiting
		for c := range calls[n] {
			if visit(c) {
				return true
			}
		}
		state[n] = done
		return false
	}
	for _, n := range names {
		if visit(n) {
			return n
		}
	}
	return ""
}
