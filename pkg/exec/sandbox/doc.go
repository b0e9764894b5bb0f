// Package sandbox runs a build step in a child process with its own mount,
// PID, UTS and IPC namespaces (not network: package managers need it), so
// that every mount and every process the step creates ends when the child
// ends — normally, with an error, when it is killed, or when the imgplan
// process that started it is SIGKILLed.
//
// The child is a re-exec of the running binary (/proc/self/exe). Init, the
// first call in main, recognises it by an environment variable and runs the
// function registered under the name Run asked for. The process tree is
//
//	imgplan ── Run (goroutine on a locked OS thread until Wait returns)
//	  └─ init    PID 1 in the new namespaces: makes / private, reaps orphans
//	     └─ worker  runs the registered Func, cleans up, reports the result
//	        └─ commands (Child.Command: chrooted; Child.HostCommand: not)
//
// Why two processes in the namespace: PID 1 inherits every orphan (a daemon
// a package script double-forked) and must reap it, but a reaper calling
// wait4(-1) would steal the exit status of commands the Func is waiting for.
// So PID 1 only reaps, and the Func runs in its own process as a normal
// (non-init) process with ordinary signal semantics.
//
// Kill safety rests on the kernel, not on cleanup code:
//
//   - The child has Pdeathsig SIGKILL. Pdeathsig fires when the thread that
//     forked exits, and Go may end a thread (a locked goroutine that exits),
//     so Run keeps its goroutine on a locked OS thread until Wait returns.
//   - When PID 1 of a PID namespace dies, the kernel SIGKILLs every other
//     process in it and reaps them before the parent's wait returns.
//   - When the last process of a mount namespace is gone, the namespace and
//     all its mounts go with it. Mount propagation of / is made private
//     before anything is mounted, so no mount ever appears on the host.
//
// Files the sandbox creates in the image tree (missing mount points, an
// empty /etc/resolv.conf to bind onto, policy-rc.d) are removed by Cleanup
// and the undo of BlockServices, which the worker also runs after the Func
// returns. A killed child cannot remove them; a stage that did not finish is
// discarded by the store anyway.
//
// The package needs Linux 5.12 or later (openat2, the new mount API with
// mount_setattr), root, and /proc mounted on the host.
package sandbox
