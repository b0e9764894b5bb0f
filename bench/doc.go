// Package bench measures imgplan: Go benchmarks (go test -bench . ./bench)
// and scripts that time imgplan against the tools it replaces, run side by
// side and reported as ratios (see README.md in this directory).
package bench
