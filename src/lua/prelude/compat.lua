-- compat.lua: Lua 5.1 aliases and the strict-globals switch.
unpack = unpack or table.unpack
loadstring = loadstring or function(s, name) return load(s, name, "t") end
table.getn = table.getn or function(t) return #t end
math.pow = math.pow or function(a, b) return a ^ b end

-- Globals that may be read before anything sets them (tested with `if X then`).
local optional = { secrets = true, jit = true, bit = true, bit32 = true, arg = true, setfenv = true,
                   getfenv = true, module = true }

-- After loading, reading an undefined global is an error naming it (typos fail loudly).
function __sloth_strict()
  setmetatable(_G, {
    __index = function(_, name)
      if optional[name] then return nil end
      error(("undefined global '%s'"):format(tostring(name)), 2)
    end,
  })
  __sloth_strict = nil
end

-- import("other.sloth"): loads another workflow file (relative to the importing file) into this
-- run, so its tasks and workflows join this file's. A file is imported once.
local imported = {}
function import(path)
  if type(path) ~= "string" then error("import: expected a file path", 2) end
  if path:sub(1, 1) ~= "/" then
    local source = debug.getinfo(2, "S").source
    local dir = source:sub(1, 1) == "@" and source:sub(2):match("^(.*)/[^/]*$") or nil
    if dir then path = dir .. "/" .. path end
  end
  if imported[path] ~= nil then return imported[path] end
  local chunk, err = loadfile(path, "t")
  if not chunk then error("import: " .. err, 2) end
  imported[path] = true
  local result = chunk()
  imported[path] = result == nil and true or result
  return imported[path]
end

-- require() also finds Lua files next to the workflow file.
function __sloth_add_search_dir(dir)
  package.path = dir .. "/?.lua;" .. dir .. "/?.sloth;" .. package.path
end
