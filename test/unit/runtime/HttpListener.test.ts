// The request heads the plugins' HTTP listener understands: a GET or HEAD without a body, in
// origin form, fields without folding. Anything else is refused before a handler sees it.
import { describe, expect, it } from "@effect/vitest"
import * as HttpListener from "../../../src/runtime/HttpListener.ts"

describe("HttpListener.parseHead", () => {
  it("reads the method, the target as sent and the fields (lower-case names, repeats joined)", () => {
    const head = HttpListener.parseHead("GET /message/a%2Fb?x HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a:  2 ")
    expect(head).toEqual({
      _tag: "Request",
      request: { method: "GET", path: "/message/a%2Fb?x", headers: new Map([["host", "h"], ["x-a", "1, 2"]]) }
    })
  })

  it.each([
    ["a lower-case method", "get / HTTP/1.1"],
    ["an absolute target", "GET http://h/ HTTP/1.1"],
    ["an asterisk", "OPTIONS * HTTP/1.1"],
    ["HTTP/0.9", "GET /"],
    ["HTTP/2", "GET / HTTP/2.0"],
    ["a space in the target", "GET /a b HTTP/1.1"],
    ["a NUL in the target", "GET /a\0 HTTP/1.1"],
    ["a folded field", "GET / HTTP/1.1\r\nX-A: 1\r\n 2"],
    ["a field without a colon", "GET / HTTP/1.1\r\nnonsense"],
    ["a space before the colon", "GET / HTTP/1.1\r\nX-A : 1"],
    ["a bare LF", "GET / HTTP/1.1\nX-A: 1"],
    ["a body", "GET / HTTP/1.1\r\nContent-Length: 5"],
    ["chunked", "GET / HTTP/1.1\r\nTransfer-Encoding: chunked"]
  ])("refuses %s with 400", (_, text) => {
    expect(HttpListener.parseHead(text)).toEqual({ _tag: "Bad", status: 400 })
  })

  it("takes Content-Length: 0", () => {
    expect(HttpListener.parseHead("HEAD / HTTP/1.0\r\nContent-Length: 0")._tag).toBe("Request")
  })
})
