-- Argo CD health check for remediator.dev/AlertPolicy (argocd-cm key
-- resource.customizations.health.remediator.dev_AlertPolicy; docs/gitops.md).
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

local function condition(kind)
  if status.conditions == nil then return nil end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then return c end
  end
  return nil
end

local ready = condition("Ready")
if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = "Not ready (" .. (ready.reason or "") .. "): " .. (ready.message or "")
  return hs
end
-- An open circuit breaker stops the policy until a person resumes it (kubectl remediator resume).
local suspended = condition("Suspended")
if (status.circuitBreaker ~= nil and status.circuitBreaker.open == true)
    or (suspended ~= nil and suspended.status == "True" and suspended.reason == "CircuitOpen") then
  hs.status = "Degraded"
  local detail = (status.circuitBreaker and status.circuitBreaker.message) or (suspended and suspended.message) or ""
  hs.message = "Circuit breaker open: " .. detail .. " (kubectl remediator resume)"
  return hs
end
if obj.spec ~= nil and obj.spec.safety ~= nil and obj.spec.safety.suspend == true then
  hs.status = "Suspended"
  hs.message = "Suspended by spec.safety.suspend"
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Ready"
  return hs
end
return hs
