// Runs Argo CD health scripts with gopher-lua, the interpreter Argo CD embeds (test/e2e/argocd-health.test.ts).
module remediator.dev/hack/argocd-lua

go 1.26.0

require github.com/yuin/gopher-lua v1.1.1
