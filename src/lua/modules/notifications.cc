// notifications and slack: messages to Slack, Discord and Microsoft Teams incoming webhooks
// and to plain JSON webhooks, sent with the http module (so --check skips the POST and a 4xx/5xx
// answer is a failed result, not an error).
#include <lua.hpp>

#include "lua/module.h"

namespace sloth {
namespace {

constexpr char kNotificationsLua[] = R"lua(
local M = ...
local post = http.post

-- {success, status_code, body, skipped?, error?}; never raises for delivery failures.
local function deliver(fn, url, payload, o)
  if type(url) ~= "string" or url == "" then error(fn .. ": the webhook url is required", 0) end
  local resp, err = post(url, { json = payload, timeout = o.timeout or 30, retries = o.retries,
                                headers = o.headers })
  if not resp then return { success = false, error = err } end
  local ok = resp.skipped == true or (resp.status_code >= 200 and resp.status_code < 300)
  return { success = ok, status_code = resp.status_code, body = resp.body, skipped = resp.skipped,
           error = not ok and ("HTTP " .. resp.status_code .. ": " .. tostring(resp.body)) or nil }
end

local function copy_fields(from, to, fields)
  for _, f in ipairs(fields) do if from[f] ~= nil then to[f] = from[f] end end
  return to
end

-- {webhook | url, text | message, channel, username, icon_emoji, icon_url, blocks, attachments}
function M.slack(o)
  local payload = copy_fields(o, { text = o.text or o.message },
    { "channel", "username", "icon_emoji", "icon_url", "blocks", "attachments", "thread_ts" })
  return deliver("notifications.slack", o.webhook or o.url, payload, o)
end

-- {webhook | url, content | text | message, username, avatar_url, embeds}
function M.discord(o)
  local payload = copy_fields(o, { content = o.content or o.text or o.message },
    { "username", "avatar_url", "embeds" })
  return deliver("notifications.discord", o.webhook or o.url, payload, o)
end

-- {webhook | url, text | message, title, theme_color}: a MessageCard.
function M.teams(o)
  local payload = { ["@type"] = "MessageCard", ["@context"] = "https://schema.org/extensions",
                    text = o.text or o.message, title = o.title, themeColor = o.theme_color,
                    summary = o.title or o.text or o.message }
  return deliver("notifications.teams", o.webhook or o.url, payload, o)
end

-- {url, payload | body (a table sent as JSON), headers}
function M.webhook(o)
  return deliver("notifications.webhook", o.url or o.webhook, o.payload or o.body or {}, o)
end

-- {type = "slack" | "discord" | "teams" | "webhook", ...}
function M.send(o)
  local kind = o.type or o.kind or "webhook"
  local fn = ({ slack = M.slack, discord = M.discord, teams = M.teams, webhook = M.webhook })[kind]
  if not fn then error("notifications.send: unknown type '" .. tostring(kind) .. "'", 0) end
  return fn(o)
end
)lua";

constexpr char kSlackLua[] = R"lua(
local M = ...
M.send = notifications.slack
function M.message(webhook, text, o)
  local args = { webhook = webhook, text = text }
  for k, v in pairs(o or {}) do args[k] = v end
  return M.send(args)
end
)lua";

}  // namespace

const Module& NotificationsModule() {
  static const Module m = {
      "notifications",
      "Messages to Slack, Discord, Teams and JSON webhooks over http; skipped under --check",
      {
          {"send", nullptr, "send{type, ...} -> result",
           "Dispatches to slack/discord/teams/webhook"},
          {"slack", nullptr, "slack{webhook, text, channel, username, blocks...} -> result",
           "Slack incoming webhook"},
          {"discord", nullptr, "discord{webhook, content, username, embeds} -> result",
           "Discord webhook"},
          {"teams", nullptr, "teams{webhook, text, title} -> result", "Teams MessageCard"},
          {"webhook", nullptr, "webhook{url, payload, headers} -> result", "POSTs JSON"},
      },
      {},
      kNotificationsLua,
  };
  return m;
}

const Module& SlackModule() {
  static const Module m = {
      "slack",
      "Slack incoming webhooks (notifications.slack)",
      {
          {"send", nullptr, "send{webhook, text, channel, username, blocks...} -> result",
           "Posts a message; {success, status_code, body, error?}"},
          {"message", nullptr, "message(webhook, text, opts?) -> result", "Shorthand for send"},
      },
      {},
      kSlackLua,
  };
  return m;
}

}  // namespace sloth
