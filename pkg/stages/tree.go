package stages

import "github.com/imgplan/imgplan/pkg/manifest"

// Tree is the finished tree that outputs read: the layers merged into one
// snapshot, with its content manifest and package list.
var Tree = register(&Kind{Name: KindTree, Version: 1, Describe: describeTree})

// TreeParams is empty: a tree is defined by its parent.
type TreeParams struct{}

func describeTree(*manifest.Manifest, *Context) (*Description, error) {
	return &Description{Params: &TreeParams{}, Summary: "merged tree, content and package manifests"}, nil
}
