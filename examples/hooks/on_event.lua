-- A hook in the on_event form: its name and event type are given to `hook add`
-- (sloth-runner hook add deploys --file examples/hooks/on_event.lua --event "deploy.*").
function on_event(event)
    log.info(event.type .. " " .. tostring(event.data.version))
    return true
end
