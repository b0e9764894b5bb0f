package sandbox

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRunResult(t *testing.T) {
	needRoot(t)
	tests := []struct {
		name    string
		fn      string
		arg     any
		want    string // substring of the error; "" for success
		is      error  // errors.Is target, if any
		funcErr bool   // a *FuncError
	}{
		{name: "success", fn: "test-ok"},
		{name: "error", fn: "test-fail", arg: map[string]int{"n": 7}, want: `sandbox test-fail: boom: {"n":7}`, funcErr: true},
		{name: "panic", fn: "test-panic", want: "panic: kaboom", funcErr: true},
		{name: "exit", fn: "test-exit", want: "worker exit status 3", is: ErrDied},
		{name: "killed", fn: "test-selfkill", want: "worker signal: killed", is: ErrDied},
		{name: "unknown", fn: "test-nonesuch", is: ErrUnknownFunc},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := Run(ctx, tt.fn, tt.arg, testOptions(t))
			if ctx.Err() != nil {
				t.Fatalf("Run hung until the timeout: %v", err)
			}
			if tt.want == "" && tt.is == nil {
				if err != nil {
					t.Fatalf("Run = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Run = nil, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run = %q, want it to contain %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Run = %v, want errors.Is %v", err, tt.is)
			}
			var fe *FuncError
			if errors.As(err, &fe) != tt.funcErr {
				t.Errorf("Run = %#v, FuncError: %v, want %v", err, !tt.funcErr, tt.funcErr)
			}
		})
	}
}
