-- Stress: random value graphs copied through a thread (and a queue, where
-- the build has one) come back structurally equal.
local threading = require("threading")
local scale = tonumber(os.getenv("STRESS_SCALE") or "1")
local count = math.floor(10000 * scale)
local seed = tonumber(os.getenv("STRESS_SEED") or os.time())
math.randomseed(seed)

local int_limits = {}
if math.type then
  int_limits = { math.maxinteger, math.mininteger, 0, -1 }
end
local zero = 0.0
local floats = { 1 / 0, -1 / 0, 0 / 0, -zero, 0.5, -1e308, 5e-324 }

local function random_string()
  local n = math.random(0, 40)
  local bytes = {}
  for i = 1, n do bytes[i] = string.char(math.random(0, 255)) end
  return table.concat(bytes)
end

local function random_scalar()
  local kind = math.random(1, 6)
  if kind == 1 then return math.random(-1000, 1000) end
  if kind == 2 then return floats[math.random(#floats)] end
  if kind == 3 and #int_limits > 0 then return int_limits[math.random(#int_limits)] end
  if kind == 4 then return math.random() < 0.5 end
  return random_string()
end

-- A graph of tables: nested, with cycles, shared sub-tables, metatables and
-- functions with upvalues.
local function random_graph()
  local nodes = {}
  local n = math.random(1, 12)
  -- each node carries its number, so that no two nodes look alike and a
  -- table key in the copy has exactly one candidate image
  for i = 1, n do nodes[i] = { id = i } end
  for i = 1, n do
    local node = nodes[i]
    for _ = 1, math.random(0, 6) do
      local key = math.random() < 0.7 and random_scalar() or nodes[math.random(n)]
      if key == key then -- NaN cannot be a key
        local r = math.random()
        if r < 0.4 then
          node[key] = nodes[math.random(n)]          -- edges: cycles, sharing
        elseif r < 0.5 then
          local up = random_scalar()
          node[key] = function() return up end         -- a function with an upvalue
        else
          node[key] = random_scalar()
        end
      end
    end
    if math.random() < 0.2 then
      setmetatable(node, nodes[math.random(n)])
    end
  end
  return nodes[1]
end

-- Structural equality with a bijection between the two graphs' tables.
local function same(a, b, map, rev)
  if type(a) ~= type(b) then return false end
  if type(a) == "function" then return same(a(), b(), map, rev) end
  if type(a) ~= "table" then
    if a ~= a then return b ~= b end
    if a == 0 and b == 0 then return 1 / a == 1 / b end
    if math.type and math.type(a) ~= math.type(b) then return false end
    return a == b
  end
  if map[a] ~= nil or rev[b] ~= nil then return map[a] == b and rev[b] == a end
  map[a], rev[b] = b, a
  local na, nb = 0, 0
  for k, v in pairs(a) do
    na = na + 1
    local bk = k
    if type(k) == "table" then
      bk = map[k]
      if bk == nil then
        -- the key table has not been met yet: find its image among b's
        -- keys, trying each on copies of the maps so a miss leaves no trace
        for k2 in pairs(b) do
          if type(k2) == "table" and rev[k2] == nil then
            local m2, r2 = {}, {}
            for x, y in pairs(map) do m2[x] = y end
            for x, y in pairs(rev) do r2[x] = y end
            if same(k, k2, m2, r2) then
              for x, y in pairs(m2) do map[x] = y end
              for x, y in pairs(r2) do rev[x] = y end
              bk = k2
              break
            end
          end
        end
      end
    end
    if bk == nil or not same(v, rawget(b, bk), map, rev) then return false end
  end
  for _ in pairs(b) do nb = nb + 1 end
  if na ~= nb then return false end
  local ma, mb = getmetatable(a), getmetatable(b)
  if ma == nil or mb == nil then return ma == mb end
  return same(ma, mb, map, rev)
end

local t0 = threading.monotonic()
local batch = 100
local checked = 0
local q = threading.Queue and threading.Queue()
while checked < count do
  local graphs = {}
  for i = 1, batch do graphs[i] = random_graph() end
  local t = threading.start(function(list, queue)
    if queue then
      for i = 1, #list do queue:put(list[i]) end
      local back = {}
      for i = 1, #list do back[i] = queue:get() end
      return back
    end
    return list
  end, graphs, q)
  local ok, back = t:join(60)
  assert(ok, back)
  for i = 1, batch do
    if not same(graphs[i], back[i], {}, {}) then
      error(("graph %d of batch at %d differs after the round trip (seed %d)"):format(i, checked, seed))
    end
  end
  checked = checked + batch
end
print(("transfer property: %d random graphs through a thread%s came back equal in %.2f s (seed %d)")
  :format(checked, q and " and a queue" or "", threading.monotonic() - t0, seed))
