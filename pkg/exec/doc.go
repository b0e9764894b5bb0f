// Package exec runs plans: a content-addressed store of stage results, the
// snapshotter that stacks them, the isolated runner that builds each stage,
// and the DAG walker. Not built yet; see docs/architecture.md.
package exec
