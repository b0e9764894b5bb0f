package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/imgplan/imgplan/pkg/exec"
)

func newApplyCmd() *cobra.Command {
	var lf loadFlags
	var sf storeFlags
	var rf remoteFlags
	var outDir, snapshotter, logFormat string
	var jobs int
	var verbose bool
	cmd := &cobra.Command{
		Use:   "apply MANIFEST",
		Short: "Build the image: every stage not in the store, then the outputs",
		Long: "Apply plans the manifest, builds every node whose key the store does not\n" +
			"hold (each in an isolated sandbox, each committed to the store when\n" +
			"complete), and copies the outputs to the output directory with a report\n" +
			"(imgplan-report.json) of what was built and what was cached.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var progress exec.Progress
			switch logFormat {
			case "text":
				live := false
				if f, ok := cmd.ErrOrStderr().(*os.File); ok {
					live = isTerminal(f)
				}
				tp := newTextProgress(cmd.ErrOrStderr(), live)
				defer tp.Close()
				progress = tp
			case "json":
				progress = &jsonProgress{log: slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), nil))}
			default:
				return usageError{fmt.Errorf("unknown --log-format %q (text, json)", logFormat)}
			}
			remotes, err := rf.options() // usage errors before any work
			if err != nil {
				return err
			}
			pl, err := compileWithStore(ctx, &lf, &sf, args[0], true)
			if err != nil {
				return err
			}
			p := pl.plan
			if outDir == "" {
				outDir = filepath.Join("out", p.Name)
			}
			for _, n := range p.Notes {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: note: %s\n", p.Name, n)
			}
			toBuild, cached := p.Counts()
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: %d nodes, %d to build, %d cached\n", p.Name, len(p.Nodes), toBuild, cached)
			opts := []exec.Option{exec.WithProgress(progress), exec.WithJobs(jobs), exec.WithSnapshotter(snapshotter),
				exec.WithLogger(slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)))}
			if verbose {
				opts = append(opts, exec.WithBuildLog(cmd.ErrOrStderr()))
			}
			opts = append(opts, remotes...)
			rep, err := exec.New(pl.store, opts...).Apply(ctx, p, outDir)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: built %d, cached %d, pulled %d in %.1fs; outputs in %s\n", p.Name, rep.Built, rep.Cached, rep.Pulled, rep.Seconds, outDir)
			if rep.Pushed > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: pushed %d objects to %s\n", p.Name, rep.Pushed, rf.to)
			}
			for _, o := range rep.Outputs {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", filepath.Join(outDir, o.Path), humanBytes(o.Size))
			}
			return nil
		},
	}
	lf.register(cmd)
	sf.register(cmd)
	rf.register(cmd)
	cmd.Flags().StringVarP(&outDir, "out", "o", "", "output directory (default out/<name>)")
	cmd.Flags().IntVarP(&jobs, "jobs", "j", 0, "nodes built at once (default: number of CPUs)")
	cmd.Flags().StringVar(&snapshotter, "snapshotter", "", "overlay or copy (default: overlay where it works)")
	cmd.Flags().StringVar(&logFormat, "log-format", "text", "progress as text or json lines")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show the output of build commands")
	cmd.Flags().BoolVar(&lf.locked, "locked", false, "fail when the manifest's lock file is missing or stale instead of resolving packages")
	return cmd
}

// textProgress prints a line per node as it starts and as it ends, with
// its key, status, duration and size. On a terminal it also keeps a live
// status line of what is building and for how long.
type textProgress struct {
	mu      sync.Mutex
	w       io.Writer
	live    bool
	running map[string]time.Time
	status  bool // a status line is on screen
	stop    chan struct{}
}

func newTextProgress(w io.Writer, live bool) *textProgress {
	t := &textProgress{w: w, live: live, running: map[string]time.Time{}, stop: make(chan struct{})}
	if live {
		go func() {
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-tick.C:
					t.mu.Lock()
					t.drawStatus()
					t.mu.Unlock()
				case <-t.stop:
					return
				}
			}
		}()
	}
	return t
}

// Close ends the live status line.
func (t *textProgress) Close() {
	close(t.stop)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.clearStatus()
}

func (t *textProgress) clearStatus() {
	if t.status {
		fmt.Fprint(t.w, "\r\033[K")
		t.status = false
	}
}

func (t *textProgress) drawStatus() {
	if !t.live || len(t.running) == 0 {
		return
	}
	ids := make([]string, 0, len(t.running))
	for id := range t.running {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%s %ds", id, int(time.Since(t.running[id]).Seconds()))
	}
	fmt.Fprintf(t.w, "\r\033[K  building: %s", strings.Join(parts, ", "))
	t.status = true
}

func (t *textProgress) Event(e exec.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.clearStatus()
	n := e.Node
	switch e.Status {
	case "building":
		t.running[n.ID] = time.Now()
		fmt.Fprintf(t.w, "  %-7s %-24s %s  %s\n", "build", n.ID, n.Key.Short(), n.Summary)
	case "waiting":
		fmt.Fprintf(t.w, "  %-7s %-24s %s  another build holds it\n", "wait", n.ID, n.Key.Short())
	case "cached":
		fmt.Fprintf(t.w, "  %-7s %-24s %s\n", "cached", n.ID, n.Key.Short())
	case "pulling":
		t.running[n.ID] = time.Now()
		fmt.Fprintf(t.w, "  %-7s %-24s %s  from the remote cache\n", "pull", n.ID, n.Key.Short())
	case "pulled":
		delete(t.running, n.ID)
		fmt.Fprintf(t.w, "  %-7s %-24s %s  %6.1fs  %9s\n", "pulled", n.ID, n.Key.Short(), e.Elapsed.Seconds(), humanBytes(e.Size))
	case "pushed":
		fmt.Fprintf(t.w, "  %-7s %-24s %s\n", "pushed", n.ID, n.Key.Short())
	case "built":
		delete(t.running, n.ID)
		fmt.Fprintf(t.w, "  %-7s %-24s %s  %6.1fs  %9s\n", "built", n.ID, n.Key.Short(), e.Elapsed.Seconds(), humanBytes(e.Size))
	case "failed":
		delete(t.running, n.ID)
		fmt.Fprintf(t.w, "  %-7s %-24s %s  %6.1fs\n", "FAILED", n.ID, n.Key.Short(), e.Elapsed.Seconds())
	}
	t.drawStatus()
}

// humanBytes prints a size with one decimal in the largest binary unit.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// jsonProgress writes one JSON object per event.
type jsonProgress struct{ log *slog.Logger }

func (j *jsonProgress) Event(e exec.Event) {
	attrs := []any{"node", e.Node.ID, "kind", e.Node.Kind, "key", string(e.Node.Key), "status", e.Status}
	if e.Elapsed > 0 {
		attrs = append(attrs, "seconds", e.Elapsed.Round(time.Millisecond).Seconds())
	}
	if e.Size > 0 {
		attrs = append(attrs, "size", e.Size)
	}
	if e.Err != nil {
		attrs = append(attrs, "error", e.Err.Error())
	}
	j.log.Info("node", attrs...)
}
