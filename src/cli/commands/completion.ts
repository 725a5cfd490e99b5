/** `msb completion bash|zsh|fish` (docs/cli.md §1): prints the shell's completion script. */
import type { CommandSpec } from '../command.js';
import { UsageError } from '../context.js';

export const commands: CommandSpec[] = [
  {
    name: 'completion',
    summary: 'Print a shell completion script (bash, zsh or fish)',
    synopsis: 'completion bash|zsh|fish',
    description: `Completes commands, subcommands, flags, flag values and, for image arguments, the cached
references. Load it in the current shell, or install it:
  bash:  source <(msb completion bash)     or  msb completion bash > /etc/bash_completion.d/msb
  zsh:   source <(msb completion zsh)      or  msb completion zsh > "\${fpath[1]}/_msb"
  fish:  msb completion fish | source      or  msb completion fish > ~/.config/fish/completions/msb.fish`,
    flags: [],
    operands: 'other',
    async run({ positionals, usage }, ctx) {
      const { BASH_SCRIPT, FISH_SCRIPT, ZSH_SCRIPT } = await import('../completion.js');
      const scripts: Record<string, string> = { bash: BASH_SCRIPT, zsh: ZSH_SCRIPT, fish: FISH_SCRIPT };
      const shell = positionals[0];
      if (positionals.length !== 1 || shell === undefined || scripts[shell] === undefined)
        throw new UsageError('msb completion needs one of bash, zsh, fish', usage);
      ctx.stdout.write(scripts[shell]!);
      return 0;
    },
  },
];
