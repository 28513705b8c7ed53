-- wrk script: POST the body in $WRK_BODY_FILE; with $WRK_DELAY_MS > 0 each connection pauses between requests.
local f = assert(io.open(os.getenv("WRK_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
local pause = tonumber(os.getenv("WRK_DELAY_MS") or "0")

function delay()
  return pause
end
