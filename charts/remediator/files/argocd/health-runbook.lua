-- Argo CD health check for remediator.dev/Runbook (argocd-cm key
-- resource.customizations.health.remediator.dev_Runbook; docs/gitops.md).
-- Runs in Argo CD's gopher-lua with only the base and table libraries: no string.*.
-- Tested on sample objects by test/e2e/argocd-health.test.ts.
local hs = { status = "Progressing", message = "Waiting for the controller" }
if obj.status == nil then
  return hs
end
local status = obj.status
-- A status older than the spec says nothing about the spec Git just applied.
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.message = "Waiting for the controller to observe generation " .. generation
  return hs
end

local ready = nil
if status.conditions ~= nil then
  for _, c in ipairs(status.conditions) do
    if c.type == "Ready" then ready = c end
  end
end
if ready == nil then
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Ready"
elseif ready.status == "False" then
  -- An invalid runbook (a bad pattern or template, a document the controller does not
  -- allow): every policy that uses it is not Ready either, until an administrator fixes it.
  hs.status = "Degraded"
  hs.message = "Not ready (" .. (ready.reason or "") .. "): " .. (ready.message or "")
end
return hs
