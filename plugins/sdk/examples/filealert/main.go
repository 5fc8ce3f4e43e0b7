// Command filealert is an example alert plugin: each event becomes one
// JSON line appended to params.file.
package main

import (
	"context"
	"encoding/json"
	"os"

	"github.com/vigil-ha/vigil/plugins/pb"
	"github.com/vigil-ha/vigil/plugins/sdk"
)

func deliver(_ context.Context, in *pb.AlertRequest) (*pb.AlertResult, error) {
	line, err := json.Marshal(in.GetEvent())
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(in.GetParams()["file"], os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Write(append(line, '\n')); err != nil {
		return nil, err
	}
	return &pb.AlertResult{Detail: "written to " + f.Name()}, nil
}

func main() { sdk.Serve(sdk.Plugin{Alert: sdk.AlertFunc(deliver)}) }
