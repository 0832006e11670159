// Command argocd-lua runs an Argo CD resource health script on one Kubernetes object,
// the way Argo CD's application controller does (argo-cd util/lua/lua.go): gopher-lua,
// the Lua 5.1 interpreter Argo CD embeds; a custom health script from argocd-cm runs
// with only the package, base and table libraries (no string, no io, no os), under a
// one-second deadline, with the object as the global `obj`; it must return a table
// whose `status` is one of Argo CD's health codes, or Argo CD reports Unknown.
//
// Usage: argocd-lua <health.lua> < object.json
// Prints {"status":"...","message":"..."} on stdout; exits 1 when the script fails
// (a runtime error, a wrong return type), which Argo CD would show as an error too.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
)

type healthStatus struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

// The codes Argo CD's isValidHealthStatusCode accepts.
var validCodes = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true, "Missing": true,
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: argocd-lua <health.lua> < object.json")
		os.Exit(2)
	}
	script, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail(err)
	}
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	var obj map[string]interface{}
	if err := json.Unmarshal(input, &obj); err != nil {
		fail(fmt.Errorf("object: %w", err))
	}
	result, err := run(string(script), obj)
	if err != nil {
		fail(err)
	}
	out, _ := json.Marshal(result)
	fmt.Println(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "argocd-lua:", err)
	os.Exit(1)
}

func run(script string, obj map[string]interface{}) (*healthStatus, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", decode(l, obj))
	if err := l.DoString(script); err != nil {
		return nil, err
	}
	ret := l.Get(-1)
	table, ok := ret.(*lua.LTable)
	if !ok {
		return nil, fmt.Errorf("expect table output from Lua script, not %s", ret.Type().String())
	}
	status := lua.LVAsString(table.RawGetString("status"))
	if !validCodes[status] {
		return &healthStatus{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return &healthStatus{Status: status, Message: lua.LVAsString(table.RawGetString("message"))}, nil
}

// decode mirrors Argo CD's decodeValue: JSON objects and arrays become tables, numbers
// LNumber, null nil.
func decode(l *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []interface{}:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(decode(l, item))
		}
		return arr
	case map[string]interface{}:
		tbl := l.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), decode(l, item))
		}
		return tbl
	}
	return lua.LNil
}
