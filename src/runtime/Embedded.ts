/**
 * A single executable (`bun build --compile`) carries smtp-bridge and Effect inside it, but the
 * config file beside it is loaded from disk, and Bun looked its `import ... from "smtp-bridge"`
 * (and a plugin's `from "effect"`) up in a node_modules that is not there: "Cannot find package
 * 'smtp-bridge'". Bun's runtime plugin API registers virtual modules, so inside such a binary these
 * names resolve to the modules it already holds; a plugin then shares the bridge's Effect runtime,
 * service tags and Notes keys, as it does when run from the sources.
 *
 * Only in a compiled binary: from the sources, "smtp-bridge" resolves to src/index.ts by the
 * package's own name and "effect" to node_modules, which are these same modules.
 *
 * The public API comes in as an argument (a loader): the runtime layer does not import the layers
 * above it. It and Effect's root module are imported only inside such a binary: from the sources,
 * the root module (all of Effect, with fast-check) cost start-up some 20 ms under Bun (issue 16).
 *
 * @example
 * Effect.zipRight(Embedded.install(() => import("./index.ts")), program)   // before the config file is imported
 */
import * as Effect from "effect/Effect"

interface VirtualModule {
  readonly exports: Record<string, unknown>
  readonly loader: "object"
}

interface BunRuntime {
  /** The entry module's path: inside a single executable, under its virtual file system. */
  readonly main: string
  readonly plugin: (plugin: {
    readonly name: string
    readonly setup: (build: { readonly module: (specifier: string, load: () => VirtualModule) => void }) => void
  }) => void
}

const bun = (globalThis as { readonly Bun?: BunRuntime }).Bun

// Bun serves a compiled binary's own modules from a virtual file system: /$bunfs/ (B:/~BUN/ on
// Windows). Asked of Bun.main, not of import.meta.url: a binary built with --bytecode (the
// build:bun script) keeps each module's source path from the build machine in import.meta.url.
const compiled = (): boolean => bun !== undefined && /\$bunfs|~BUN/.test(bun.main)

const namespace = (module: object): VirtualModule => ({ exports: { ...module }, loader: "object" })

/** In a Bun single executable, makes "smtp-bridge", "effect" and "effect/<Module>" importable by files loaded from disk. */
export const install = (api: () => Promise<object>): Effect.Effect<void> =>
  !compiled() || bun === undefined ? Effect.void : Effect.promise(async () => {
    const [smtpBridge, EffectIndex] = await Promise.all([api(), import("effect")])
    bun.plugin({
      name: "smtp-bridge embedded modules",
      setup(build) {
        build.module("smtp-bridge", () => namespace(smtpBridge))
        build.module("effect", () => namespace(EffectIndex))
        // "effect/Schema" and the like: the root module re-exports each one as a namespace.
        for (const [name, value] of Object.entries(EffectIndex)) {
          if (/^[A-Z]/.test(name) && typeof value === "object" && value !== null) build.module(`effect/${name}`, () => namespace(value))
        }
      }
    })
  })
