-- Posts each failed task to a Slack-style incoming webhook ($SLACK_WEBHOOK_URL).
local hook = { name = "slack_failures", event_type = "task.failed", timeout = 10, retries = 3 }

function hook.execute(event)
    local task = event.data.task
    local resp = http.post(os.getenv("SLACK_WEBHOOK_URL"), {
        text = string.format(":x: %s failed in %s: %s", task.task_name, task.workflow_name,
            task.error),
    })
    if not resp.success then return false, "slack answered " .. resp.status_code end
    return true, "notified"
end

return hook
