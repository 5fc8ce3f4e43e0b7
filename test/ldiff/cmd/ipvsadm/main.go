// Command ipvsadm is test/ldiff's recording ipvsadm: ldirectord, run in
// debug mode, calls ./ipvsadm from its working directory, where the
// differential test links this binary (a small one, never built with the
// race detector: ldirectord calls it for every change and listing).
package main

import (
	"os"

	"github.com/vigil-ha/vigil/test/ldiff"
)

func main() { os.Exit(ldiff.ShimMain(os.Args[1:], os.Stdout, os.Stderr)) }
