local threading = require("threading")

local it_53 = math.type and it or pending

describe("Value", function()
  it("holds nil by default", function()
    assert.is_nil(threading.Value():get())
  end)

  it("holds its initial value", function()
    assert.equal("start", threading.Value("start"):get())
  end)

  it("holds strings long and short", function()
    local v = threading.Value()
    v:set("short")
    assert.equal("short", v:get())
    v:set(("long"):rep(100))
    assert.equal(("long"):rep(100), v:get())
  end)

  it("stores a copy of a table", function()
    local t = { 1, 2 }
    local v = threading.Value(t)
    t[1] = 99
    assert.same({ 1, 2 }, v:get())
  end)

  it("stores module objects by reference", function()
    local lock = threading.Lock()
    local v = threading.Value(lock)
    assert.equal(lock, v:get())
  end)

  it("is shared between threads", function()
    local v = threading.Value(0)
    local t = threading.start(function(val) val:set("from thread") end, v)
    t:join(10)
    assert.equal("from thread", v:get())
  end)

  it("adds one by default and returns the new value", function()
    local v = threading.Value(41)
    assert.equal(42, v:add())
    assert.equal(42, v:get())
  end)

  it("adds a float", function()
    local v = threading.Value(1)
    assert.equal(1.5, v:add(0.5))
  end)

  it("keeps integer arithmetic on Lua 5.3 and later", function()
    if not math.type then
      return
    end
    local v = threading.Value(1)
    v:add(2)
    assert.equal("integer", math.type(v:get()))
  end)

  it("adds atomically from four threads", function()
    local v = threading.Value(0)
    local threads = {}
    for i = 1, 4 do
      threads[i] = threading.start(function(val) for _ = 1, 10000 do val:add(1) end end, v)
    end
    for i = 1, 4 do threads[i]:join(30) end
    assert.equal(40000, v:get())
  end)

  it("never shows a reader half of a value a writer is changing", function()
    -- get reads numbers without the lock (shared.c); a torn read would
    -- show the kind of one value with the bits of another. The writer
    -- cycles through values whose bits mean something else in the other
    -- kinds; the reader must only ever see one of them, whole.
    local values = { 1.5, -2.25, true, false, "a string" }
    if math.type then -- integers, whose bits as a float are tiny numbers
      values[#values + 1] = 7
      values[#values + 1] = math.tointeger(2 ^ 40)
    end
    local v = threading.Value(values[1])
    local writing, stop = threading.Event(), threading.Event()
    local writer = threading.start(function(val, vals, w, st)
      local n = 0
      while not st:is_set() do
        n = n + 1
        val:set(vals[n % #vals + 1])
        if n % 7 == 0 then val:set(nil) end
        if n == 100 then w:set() end
      end
      return n
    end, v, values, writing, stop)
    -- read only while the writer writes (a slow machine may start it late)
    assert.is_true(writing:wait(30))
    local allowed = {}
    for _, x in ipairs(values) do
      allowed[x] = true
    end
    local bad
    for _ = 1, 200000 do
      local x = v:get()
      if x ~= nil and not allowed[x] then
        bad = x
        break
      end
    end
    stop:set()
    local ok, n = writer:join(30)
    assert.is_true(ok)
    assert.is_nil(bad)
    assert.is_true(n >= 100)
  end)

  it("sets only when compare_and_set sees the expected value", function()
    local v = threading.Value(1)
    assert.is_false(v:compare_and_set(2, 3))
    assert.equal(1, v:get())
    assert.is_true(v:compare_and_set(1, 3))
    assert.equal(3, v:get())
  end)

  it("compares integers and floats by value", function()
    local v = threading.Value(1)
    assert.is_true(v:compare_and_set(1.0, "x"))
  end)

  it("matches a string longer than 22 bytes in compare_and_set (kept in a buffer, it never did)", function()
    local long = ("x"):rep(30)
    local v = threading.Value(long)
    assert.is_false(v:compare_and_set(long .. "!", "other"))
    assert.is_true(v:compare_and_set(v:get(), "short"))
    assert.equal("short", v:get())
    assert.is_true(v:compare_and_set("short", long))
    assert.is_true(v:compare_and_set(long, 1))
    assert.equal(1, v:get())
  end)

  it("lets compare_and_set loops append to a long string from four threads", function()
    local v = threading.Value(("-"):rep(30))
    local threads = {}
    for i = 1, 4 do
      threads[i] = threading.start(function(val, mark)
        for _ = 1, 100 do
          -- a failed try means another thread appended: 400 in a row cannot all fail
          local tries = 0
          repeat
            tries = tries + 1
            assert(tries <= 400, "compare_and_set never matched")
            local cur = val:get()
          until val:compare_and_set(cur, cur .. mark)
        end
      end, v, tostring(i))
    end
    for i = 1, 4 do
      assert.is_true((threads[i]:join(30)))
    end
    local s = v:get()
    assert.equal(430, #s)
    for i = 1, 4 do
      assert.equal(100, select(2, s:gsub(tostring(i), "")))
    end
  end)

  it("never matches a table or a function in compare_and_set: the Value holds a copy", function()
    local t = { 1 }
    local v = threading.Value(t)
    assert.is_false(v:compare_and_set(t, 2))
    assert.is_false(v:compare_and_set(v:get(), 2))
  end)

  it("matches a module object by identity in compare_and_set", function()
    local lock = threading.Lock()
    local v = threading.Value(lock)
    assert.is_false(v:compare_and_set(threading.Lock(), 1))
    assert.is_true(v:compare_and_set(lock, 1))
  end)

  it_53("compares a big integer with a float exactly in compare_and_set, as == does", function()
    local big = math.tointeger(2 ^ 53) + 1   -- 2^53 + 1: no float has this value
    assert.is_false(big == 2 ^ 53)
    assert.is_false(threading.Value(big):compare_and_set(2 ^ 53, "x"))
    assert.is_false(threading.Value(2 ^ 53):compare_and_set(big, "x"))
    assert.is_false(threading.Value(math.maxinteger):compare_and_set(2 ^ 63, "x"))
    assert.is_true(threading.Value(big - 1):compare_and_set(2 ^ 53, "x"))
    assert.is_true(threading.Value(2 ^ 53):compare_and_set(big - 1, "x"))
    assert.is_false(threading.Value(3):compare_and_set(3.5, "x"))
  end)

  it("lets compare_and_set loops count exactly from four threads", function()
    local v = threading.Value(0)
    local threads = {}
    for i = 1, 4 do
      threads[i] = threading.start(function(val)
        for _ = 1, 2000 do
          repeat
            local cur = val:get()
          until val:compare_and_set(cur, cur + 1)
        end
      end, v)
    end
    for i = 1, 4 do threads[i]:join(30) end
    assert.equal(8000, v:get())
  end)
end)

describe("Value bad input", function()
  it("refuses to add to a value that is not a number", function()
    assert.has_error(function() threading.Value("x"):add(1) end,
      "calling 'add' on bad self (value is not a number)")
  end)

  it("refuses to add something that is not a number", function()
    assert.has_error(function() threading.Value(1):add("x") end,
      "bad argument #1 to 'add' (number expected, got string)")
  end)

  it("refuses a value that cannot be transferred, keeping the old one", function()
    local v = threading.Value(5)
    assert.has_error(function() v:set({ co = coroutine.create(function() end) }) end,
      "cannot transfer value at value.co: coroutine")
    assert.equal(5, v:get())
  end)

  it("refuses set without a value", function()
    assert.has_error(function() threading.Value(1):set() end,
      "bad argument #1 to 'set' (value expected)")
  end)
end)
