// Command counter is an example resource plugin: "running" is a file, and
// every start bumps a counter in it. Build it into plugin_dir and use it
// as type = "plugin:counter" with params.file.
package main

import (
	"context"
	"os"
	"strconv"
	"strings"

	"github.com/vigil-ha/vigil/plugins/pb"
	"github.com/vigil-ha/vigil/plugins/sdk"
)

type counter struct{ sdk.BaseResource }

func (counter) Start(_ context.Context, in *pb.Instance) (*pb.Result, error) {
	file := in.GetParams()["file"]
	b, _ := os.ReadFile(file)
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	sdk.Log().Info("starting", "id", in.GetId(), "starts", n+1)
	if err := os.WriteFile(file, []byte(strconv.Itoa(n+1)), 0o644); err != nil {
		return sdk.Fail(pb.Code_ERR_PERM, "%v", err), nil
	}
	return sdk.OK(), nil
}

func (counter) Stop(_ context.Context, in *pb.Instance) (*pb.Result, error) {
	if err := os.Remove(in.GetParams()["file"]); err != nil && !os.IsNotExist(err) {
		return sdk.Fail(pb.Code_ERR_GENERIC, "%v", err), nil
	}
	return sdk.OK(), nil
}

func (counter) Monitor(_ context.Context, in *pb.Instance) (*pb.Result, error) {
	if _, err := os.Stat(in.GetParams()["file"]); err != nil {
		return sdk.NotRunning("no file"), nil
	}
	return sdk.OK(), nil
}

func main() { sdk.Serve(sdk.Plugin{Resource: counter{}}) }
