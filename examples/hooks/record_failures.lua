-- A hook in the seed's form: a table with a name, the event type it wants, and execute(event).
-- It appends each failed task to failures.log (relative paths are relative to the directory of
-- the process that delivers the event).
local hook = {
    name = "record_failures",
    event_type = "task.failed",
    description = "Append each failed task to failures.log",
}

function hook.execute(event)
    local task = event.data.task or {}
    fs.append("failures.log", string.format("%s %s: %s\n", event.timestamp,
        tostring(task.task_name), tostring(task.error)))
    return true, "recorded " .. tostring(task.task_name)
end

return hook
