// pause holds a pod's namespaces open: the pod sandbox's only process. It waits for
// SIGINT or SIGTERM and reaps children it inherits. (Kubernetes' own pause image cannot be
// pulled here; this is the same contract, built from source with the Go toolchain.)
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sig {
		if s == syscall.SIGCHLD {
			for {
				pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}
