local threading = require("threading")

-- A thread's state allocates small blocks from a region of its worker and
-- larger ones from malloc, moving a block between the two as it is
-- resized (src/alloc.c). These specs move data across every boundary and
-- check that none of it changes on the way.
describe("a thread's state allocator", function()
  it("keeps strings of every length up to past the small-block limit intact", function()
    local ok, sum, count = threading.start(function()
      local parts, total = {}, 0
      for n = 1, 1200 do
        parts[n] = string.rep(string.char(65 + n % 26), n)
      end
      for n = 1, 1200 do
        local s = parts[n]
        if #s ~= n or s:byte(n) ~= 65 + n % 26 then return nil, n end
        total = total + #s
      end
      return total, #parts
    end):join(30)
    assert.is_true(ok)
    assert.equal(1200 * 1201 / 2, sum)
    assert.equal(1200, count)
  end)

  it("keeps a table's items as it grows past the small-block limit and shrinks back", function()
    local ok, grown, shrunk = threading.start(function()
      local t, s = {}, 0
      for i = 1, 5000 do t[i] = i end
      for i = 1, 5000 do s = s + t[i] end
      for i = 5000, 3, -1 do t[i] = nil end
      collectgarbage("collect")      -- the table's parts shrink in the collection
      local h = {}
      for i = 1, 300 do h["k" .. i] = i end
      for i = 1, 300 do h["k" .. i] = nil end
      h.a = 1
      collectgarbage("collect")
      return s, t[1] + t[2] + (t[3] or 0) + h.a
    end):join(30)
    assert.is_true(ok)
    assert.equal(5000 * 5001 / 2, grown)
    assert.equal(4, shrunk)
  end)

  it("gives each of many threads in a row a clean state", function()
    for round = 1, 50 do
      local ok, value = threading.start(function(r)
        local t = {}
        for i = 1, 100 do t[i] = ("%d:%d"):format(r, i) end
        return t[100]
      end, round):join(10)
      assert.is_true(ok)
      assert.equal(round .. ":100", value)
    end
  end)
end)
