/**
 * The shell commands a Markdown page tells its reader to type: the lines of its `sh` code blocks
 * (continuation lines joined, comments dropped) and the inline code spans that start with a
 * command (`npx ...`, `npm ...`, `node ...`, `bun ...`, `deno ...`, `smtp-bridge ...`, `swaks ...`).
 *
 * @example
 * const commands = shellCommands(readFileSync("README.md", "utf8"))
 */
const commandStart = /^(npx|npm|node|bun|deno|smtp-bridge|swaks) /

const unique = (items: ReadonlyArray<string>): Array<string> => [...new Set(items)]

/** The lines of every ```sh (or ```bash, ```shell) block. */
const blockCommands = (markdown: string): Array<string> => {
  const commands: Array<string> = []
  for (const match of markdown.matchAll(/^```(?:sh|bash|shell)\n([\s\S]*?)^```/gm)) {
    const joined = match[1]!.replace(/\\\n\s*/g, "")
    for (const line of joined.split("\n")) {
      const command = line.replace(/(^|\s)#.*$/, "").trim()
      if (command !== "") commands.push(command.replace(/\s+/g, " "))
    }
  }
  return commands
}

/** Inline code spans outside code blocks that start with a command name. */
const inlineCommands = (markdown: string): Array<string> => {
  const prose = markdown.replace(/^```[\s\S]*?^```/gm, "")
  return [...prose.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!.trim()).filter((span) => commandStart.test(span))
}

export const shellCommands = (markdown: string): Array<string> => unique([...blockCommands(markdown), ...inlineCommands(markdown)])
