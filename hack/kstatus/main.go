// Command kstatus prints the kstatus verdict of Kubernetes objects: the rules of the
// cli-utils status library (Flux's fork, github.com/fluxcd/cli-utils, the one Flux's
// kustomize-controller runs for `wait: true` and `healthChecks`). It lets a test check
// the status remediator writes against the rules themselves, not a re-implementation.
//
// Usage: kstatus < objects.json   (a JSON array of objects)
// Prints a JSON array of {"status":"Current|InProgress|Failed|...","message":"..."}.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
)

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	var objects []map[string]interface{}
	// apimachinery's decoder: integers become int64, as unstructured objects hold them.
	if err := utiljson.Unmarshal(input, &objects); err != nil {
		fail(fmt.Errorf("input: a JSON array of objects: %w", err))
	}
	out := make([]verdict, 0, len(objects))
	for _, obj := range objects {
		res, err := status.Compute(&unstructured.Unstructured{Object: obj})
		if err != nil {
			fail(err)
		}
		out = append(out, verdict{Status: res.Status.String(), Message: res.Message})
	}
	text, _ := json.Marshal(out)
	fmt.Println(string(text))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "kstatus:", err)
	os.Exit(1)
}
