/**
 * The bridge's own relay policy, applied when every plugin continues on RCPT: a recipient is
 * accepted only from an authenticated session or one a plugin marked trusted. No default opens
 * a relay.
 */
import * as Notes from "./Notes.ts"

/** Set on a session (by `relay-policy` or any plugin) to let it relay without AUTH. */
export const Trusted: Notes.Key<boolean> = Notes.key<boolean>("relay.trusted")
