-- Argo CD health check for remediator.dev/RemediationRequest (argocd-cm key
-- resource.customizations.health.remediator.dev_RemediationRequest; docs/gitops.md).
-- Runs in Argo CD's gopher-lua with only the base and table libraries: no string.*.
-- Tested on sample objects of every phase by test/e2e/argocd-health.test.ts.
local hs = { status = "Progressing", message = "Waiting for the controller" }
if obj.status == nil or obj.status.phase == nil then
  return hs
end
local status = obj.status
-- A status older than the spec describes a request the controller has not seen yet.
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

local function explain(default)
  local text = default
  if status.reason ~= nil then text = text .. " (" .. status.reason .. ")" end
  if status.message ~= nil and status.message ~= "" then text = text .. ": " .. status.message end
  return text
end

local phase = status.phase
-- A denied AWS call keeps the request where it is and retries: show it, a person must fix the IAM role.
local access = condition("CloudAccess")
if access ~= nil and access.status == "False" and phase ~= "Succeeded" then
  hs.status = "Degraded"
  hs.message = "AWS access denied: " .. (access.message or access.reason or "")
  return hs
end

if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = explain("Remediation succeeded")
elseif phase == "Failed" then
  hs.status = "Degraded"
  hs.message = explain("Remediation failed")
elseif phase == "Expired" then
  -- Nobody approved it in time: the alert was not remediated, and a person should know.
  hs.status = "Degraded"
  hs.message = explain("Expired before approval")
elseif phase == "Skipped" or phase == "Cancelled" or phase == "Rejected" then
  -- Deliberate outcomes (a safety rule, a resolved alert, a person's no): nothing is broken.
  hs.status = "Healthy"
  hs.message = explain(phase)
elseif phase == "AwaitingApproval" then
  -- Waits on a person, not on the controller: Suspended, like a paused rollout.
  hs.status = "Suspended"
  hs.message = explain("Awaiting approval (kubectl remediator approve)")
else
  -- Pending, Enriching, Approved, Executing.
  hs.status = "Progressing"
  hs.message = explain(phase)
end
return hs
