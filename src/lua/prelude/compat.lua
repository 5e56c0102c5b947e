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
