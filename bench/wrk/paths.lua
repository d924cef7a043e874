-- GET a path picked at random from a file of paths (one per line), so that reads spread over
-- the catalog instead of hitting one cached entry: wrk ... -s paths.lua URL -- FILE
local paths = {}

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then paths[#paths + 1] = line end
  end
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
end

function request()
  return wrk.format("GET", paths[math.random(#paths)])
end
