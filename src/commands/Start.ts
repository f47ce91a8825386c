/**
 * What src/cli.ts starts: the `smtp-bridge` command, `serve`, `check-config`, `hash-password` and
 * the others (`Cli.ts`). Wiring only: the config comes from `config/Load.ts`, the server from
 * `Bridge.ts`, exit codes from `runtime/Main.ts`.
 *
 * A `serve` line in the plain form (`ConfigFlags.plain`) runs without importing @effect/cli or the
 * other commands, which with @effect/cli's parse of the whole command tree cost start-up some
 * 100 ms under Bun (issue 16); every other line, help included, goes through them as before.
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Embedded from "../runtime/Embedded.ts"
import * as Main from "../runtime/Main.ts"
import * as ConfigFlags from "./ConfigFlags.ts"
import * as Help from "./Help.ts"
import * as Serve from "./Serve.ts"

// serve, check-config and plugins print their own grouped help (see Help.ts).
const help = Help.requested(process.argv.slice(2))
const args = Help.hoistLogLevel(process.argv.slice(2))
const plain = args[0] === "serve" ? ConfigFlags.plain(args.slice(1)) : undefined
const program = help !== undefined
  ? Console.log(Help.render(help, Help.colour()))
  : plain !== undefined
  ? Serve.run(plain)
  : Effect.flatMap(Effect.promise(() => import("./Cli.ts")), (Cli) => Cli.run([...process.argv.slice(0, 2), ...args]))

// A config file loaded by a single executable imports "smtp-bridge" from inside the executable.
Main.runMain(Help.plainUnlessColour(Effect.zipRight(Embedded.install(() => import("../index.ts")), program)))
