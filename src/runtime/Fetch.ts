/**
 * `fetch` for what calls HTTP services while a session waits (HTTP hooks, the HTTP auth backend, an
 * OAuth key set, the webhook transport), with a bound on the connections it keeps to reuse.
 *
 * Deno's `fetch` keeps every connection it has opened to a host (no limit on idle ones), and a
 * request that finds none idle opens a new one and keeps it even when another came back first: 100
 * sessions calling a hook held up to 202 connections, past the two a session the session cap
 * counts for it. Deno's own client option bounds the idle ones (`Deno.createHttpClient`); Bun and
 * Node keep no more connections than they had requests at once. This is the one place that knows.
 */

/** Idle connections Deno's client keeps per host (plugins count them as `files.held`). */
export const maxIdlePerHost = 16

interface DenoHttp {
  readonly createHttpClient: (options: { readonly poolMaxIdlePerHost: number }) => object
}

const deno = (globalThis as { readonly Deno?: Partial<DenoHttp> }).Deno
let client: object | undefined

/** `fetch`, through one shared client with a bounded idle pool under Deno. */
export const boundedFetch = (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
  if (deno?.createHttpClient === undefined) return fetch(input, init)
  client ??= deno.createHttpClient({ poolMaxIdlePerHost: maxIdlePerHost })
  return fetch(input, { ...init, client } as RequestInit)
}
