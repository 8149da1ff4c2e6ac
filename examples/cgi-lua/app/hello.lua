-- A CGI script for the Lua interpreter of examples/cgi-lua: it reads the
-- request from CGI/1.1 variables and prints header lines, a blank line and
-- the body, as it would under Apache.
--   GET /?name=Ada   a greeting
--   GET /?fail=1     an error: the interpreter ends, the client gets 500
local query = os.getenv("QUERY_STRING") or ""
if query:match("fail=") then
  error("asked to fail")
end
local name = query:match("name=([%w%%]+)") or "world"
name = name:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end)
io.write("Content-Type: text/plain\r\n\r\n")
io.write("Hello, ", name, ", from ", _VERSION, " over CGI (", os.getenv("REQUEST_METHOD"), ")\n")
