/**
 * Runs a command on a pseudo-terminal (python3's `pty` module), as a person at a terminal would:
 * stdin and stderr are the terminal, stdout is a pipe (like `cmd > file`) or the terminal too. Each answer is typed
 * after its prompt appeared on the terminal.
 *
 * @example
 * const r = await onTerminal(["bun", "src/cli.ts", "hash-password"], [["Password: ", "s3cret"]])
 * expect(r.stdout).toMatch(/^\$2y\$/)
 */
import { run } from "./exec.ts"

export interface TerminalRun {
  /** What the program wrote to stdout (a pipe). */
  readonly stdout: string
  /** What appeared on the terminal: the program's stderr and the terminal's echo, if any. */
  readonly terminal: string
  /** The prompts that never appeared (their answers were not typed). */
  readonly missing: ReadonlyArray<string>
  readonly code: number
}

const driver = String.raw`
import json, os, pty, select, sys, time
argv, answers, stdout_on_terminal = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3] == "terminal"
out_r, out_w = os.pipe()
pid, fd = pty.fork()
if pid == 0:
    if not stdout_on_terminal: os.dup2(out_w, 1)
    os.close(out_w)
    os.execvp(argv[0], argv)
os.close(out_w)
screen, stdout, missing, seen, open_fds = b"", b"", [], 0, [fd, out_r]
def pump(deadline, until=None):
    global screen, stdout
    while time.time() < deadline and open_fds:
        if until is not None and until in screen[seen:]:
            return True
        ready, _, _ = select.select(open_fds, [], [], 0.1)
        for r in ready:
            try:
                data = os.read(r, 4096)
            except OSError:
                data = b""
            if not data: open_fds.remove(r)
            elif r == fd: screen += data
            else: stdout += data
    return until is not None and until in screen[seen:]
for prompt, answer in answers:
    if pump(time.time() + 30, prompt.encode()):
        seen = screen.index(prompt.encode(), seen) + len(prompt)
        os.write(fd, answer.encode() + b"\r")
    else:
        missing.append(prompt)
pump(time.time() + 30)
_, status = os.waitpid(pid, 0)
print(json.dumps({"stdout": stdout.decode(), "terminal": screen.decode(), "missing": missing, "code": os.waitstatus_to_exitcode(status)}))
`

/** Starts `argv` on a fresh pseudo-terminal and types each answer after its prompt. */
export const onTerminal = async (
  argv: ReadonlyArray<string>,
  answers: ReadonlyArray<readonly [prompt: string, answer: string]>,
  options: {
    readonly cwd?: string
    readonly env?: Record<string, string>
    /** "terminal": stdout is the terminal too (its output is then in `terminal`); a pipe by default. */
    readonly stdout?: "pipe" | "terminal"
  } = {}
): Promise<TerminalRun> => {
  const result = await run("python3", ["-c", driver, JSON.stringify(argv), JSON.stringify(answers), options.stdout ?? "pipe"], {
    timeoutMs: 90_000,
    env: { NO_COLOR: "1", ...options.env },
    ...(options.cwd === undefined ? {} : { cwd: options.cwd })
  })
  if (result.code !== 0) throw new Error(`the terminal driver failed (${result.code}):\n${result.stderr}`)
  return JSON.parse(result.stdout) as TerminalRun
}
