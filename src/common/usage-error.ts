// A command line that cannot be run as written: the CLIs print the message and the usage, and exit 2.
export class UsageError extends Error {
  override name = 'UsageError';
}
