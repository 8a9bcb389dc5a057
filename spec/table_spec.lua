local threading = require("threading")

-- The error a call raises (it must raise).
local function error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  return tostring(err)
end

-- Every key = value of a shared Table, through threading.pairs.
local function contents(st)
  local out = {}
  for k, v in threading.pairs(st) do
    out[k] = v
  end
  return out
end

-- pairs(st) runs __pairs on 5.2 and later (LuaJIT reports 5.1 and has none).
local it_pairs = _VERSION ~= "Lua 5.1" and it or pending

describe("Table", function()
  it("stores and reads values under string, number and boolean keys", function()
    local st = threading.Table()
    st.name = "x"
    st[1] = "one"
    st[2.5] = "two and a half"
    st[true] = "yes"
    st[false] = "no"
    assert.equal("x", st.name)
    assert.equal("one", st[1])
    assert.equal("two and a half", st[2.5])
    assert.equal("yes", st[true])
    assert.equal("no", st[false])
    assert.is_nil(st.missing)
  end)

  it("holds every transferable kind of value", function()
    local st = threading.Table()
    local lock = threading.Lock()
    st.f = false
    st.n = -3
    st.s = ("long"):rep(50)
    st.t = { 1, { 2 } }
    st.fn = function(x) return x * 2 end
    st.lock = lock
    assert.is_false(st.f)
    assert.equal(-3, st.n)
    assert.equal(("long"):rep(50), st.s)
    assert.same({ 1, { 2 } }, st.t)
    assert.equal(10, st.fn(5))
    assert.equal(lock, st.lock)
  end)

  it("treats a float key with an integral value as the integer key", function()
    local st = threading.Table()
    st[1.0] = "a"
    assert.equal("a", st[1])
    st[2] = "b"
    assert.equal("b", st[2.0])
  end)

  it("tells long string keys apart", function()
    local st = threading.Table()
    local a, b = ("k"):rep(40) .. "a", ("k"):rep(40) .. "b"
    st[a] = 1
    st[b] = 2
    assert.equal(1, st[a])
    assert.equal(2, st[b])
  end)

  it("removes a key assigned nil", function()
    local st = threading.Table({ a = 1, b = 2 })
    st.a = nil
    assert.is_nil(st.a)
    assert.same({ b = 2 }, contents(st))
    st.never = nil
    assert.same({ b = 2 }, contents(st))
  end)

  it("keeps every key reachable through many inserts and removals", function()
    local st = threading.Table()
    for i = 1, 2000 do
      st[i] = i
      st["k" .. i] = -i
    end
    for i = 1, 2000, 3 do
      st[i] = nil
      st["k" .. i] = nil
    end
    for i = 1, 2000 do
      if i % 3 == 1 then
        assert.is_nil(st[i])
        assert.is_nil(st["k" .. i])
      else
        assert.equal(i, st[i])
        assert.equal(-i, st["k" .. i])
      end
    end
  end)

  it("copies its initial contents from a plain table", function()
    local init = { 10, 20, x = { y = 1 } }
    local st = threading.Table(init)
    init.x.y = 2
    assert.same({ 10, 20, x = { y = 1 } }, contents(st))
  end)

  it("gives the length of its sequence with #", function()
    local st = threading.Table({ "a", "b", "c" })
    assert.equal(3, #st)
    st[4] = "d"
    assert.equal(4, #st)
    assert.equal(0, #threading.Table())
    assert.equal(0, #threading.Table({ x = 1 }))
  end)

  it("gives a border as # when the sequence has a hole", function()
    local st = threading.Table({ 1, 2, 3, 4, 5 })
    st[3] = nil
    local n = #st
    assert.is_true(n == 2 or n == 5)
    assert.is_not_nil(st[n])
    assert.is_nil(st[n + 1])
  end)

  it("stores a copy of a plain table, so changing the copy read back changes nothing", function()
    local st = threading.Table()
    st.t = { x = 1 }
    local copy = st.t
    copy.x = 2
    assert.equal(1, st.t.x)
  end)

  it("stores another Table by reference, so nested shared structures work", function()
    local st = threading.Table()
    local inner = threading.Table()
    st.inner = inner
    st.inner.x = 1
    assert.equal(1, inner.x)
    assert.equal(inner, st.inner)
  end)

  it("iterates with threading.pairs on every Lua version", function()
    local st = threading.Table({ a = 1, b = 2, [3] = "c" })
    assert.same({ a = 1, b = 2, [3] = "c" }, contents(st))
  end)

  it_pairs("iterates with pairs on Lua 5.2 and later", function()
    local st = threading.Table({ a = 1, [true] = false })
    local seen = {}
    for k, v in pairs(st) do
      seen[k] = v
    end
    assert.same({ a = 1, [true] = false }, seen)
  end)

  it("iterates over a snapshot taken when the loop starts", function()
    local st = threading.Table({ a = 1, b = 2 })
    local seen = {}
    for k, v in threading.pairs(st) do
      st[k] = nil
      st[k .. k] = v
      seen[k] = v
    end
    assert.same({ a = 1, b = 2 }, seen)
    assert.same({ aa = 1, bb = 2 }, contents(st))
  end)

  it("passes plain tables through threading.pairs", function()
    local seen = {}
    for k, v in threading.pairs({ x = 1 }) do
      seen[k] = v
    end
    assert.same({ x = 1 }, seen)
  end)

  it("is shared with other threads by reference", function()
    local st = threading.Table()
    st.from_main = "hi"
    local t = threading.start(function(shared)
      shared.from_thread = "hello"
      return shared.from_main
    end, st)
    assert.same({ true, "hi" }, { t:join(10) })
    assert.equal("hello", st.from_thread)
  end)

  it("stays consistent while 4 threads hammer it", function()
    local st = threading.Table()
    local lock = threading.Lock()
    st.total = 0
    local N = 5000
    local function hammer(shared, guard, id, n)
      for i = 1, n do
        local key = id * n + i
        shared[key] = i
        shared["s" .. key] = { id = id, i = i }
        if i % 2 == 0 then
          shared[key] = nil
        end
        guard:acquire()
        shared.total = shared.total + 1
        guard:release()
        local _ = #shared
        local _ = shared[(id + 1) % 4 * n + i]
      end
      local mine = 0
      for k in require("threading").pairs(shared) do
        if type(k) == "number" and k > id * n and k <= (id + 1) * n then
          mine = mine + 1
        end
      end
      return mine
    end
    local threads = {}
    for id = 0, 3 do
      threads[#threads + 1] = threading.start(hammer, st, lock, id, N)
    end
    for _, t in ipairs(threads) do
      assert.same({ true, N / 2 }, { t:join(60) })
    end
    assert.equal(4 * N, st.total)
    local numbers, strings = 0, 0
    for k, v in threading.pairs(st) do
      if type(k) == "number" then
        numbers = numbers + 1
        assert.equal(1, v % 2)
      elseif k ~= "total" then
        strings = strings + 1
        assert.equal(k, "s" .. (v.id * N + v.i))
      end
    end
    assert.equal(4 * N / 2, numbers)
    assert.equal(4 * N, strings)
  end)

  describe("with bad input", function()
    it("refuses keys that are not strings, numbers or booleans", function()
      local st = threading.Table()
      assert.matches("bad argument #2 to '[^']*' %(string, number or boolean key expected, got table%)",
        error_of(function() st[{}] = 1 end))
      assert.matches("string, number or boolean key expected, got nil",
        error_of(function() st[nil] = 1 end))
      assert.matches("string, number or boolean key expected, got table",
        error_of(function() return st[{}] end))
    end)

    it("refuses a NaN key", function()
      local st = threading.Table()
      assert.matches("table index is NaN", error_of(function() st[0 / 0] = 1 end))
    end)

    it("refuses a non-transferable value, naming where it is, and keeps the old value", function()
      local st = threading.Table({ conn = "old" })
      assert.matches("cannot transfer value at st%.conn: userdata %(not a threading object%)",
        error_of(function() st.conn = io.stdout end))
      assert.matches("cannot transfer value at st%[\"a b\"%]%[1%]: coroutine",
        error_of(function() st["a b"] = { coroutine.create(function() end) } end))
      assert.matches("cannot transfer value at st%[7%]%.x: coroutine",
        error_of(function() st[7] = { x = coroutine.create(function() end) } end))
      assert.equal("old", st.conn)
      assert.same({ conn = "old" }, contents(st))
    end)

    it("refuses an init that is not a table", function()
      assert.matches("bad argument #1 to '[%w.]*Table' %(table expected, got number%)",
        error_of(function() local _ = threading.Table(5) end))
    end)

    it("refuses an init with a key it cannot hold, or a value it cannot copy", function()
      assert.matches("bad argument #1 to '[%w.]*Table' %(table key in init",
        error_of(function() local _ = threading.Table({ [{}] = 1 }) end))
      assert.matches("cannot transfer value at init%.f: userdata",
        error_of(function() local _ = threading.Table({ f = io.stdout }) end))
    end)

    it("refuses to iterate what is neither a table nor a Table", function()
      assert.matches("table or threading.Table expected, got number",
        error_of(function() local _ = threading.pairs(5) end))
    end)
  end)
end)
