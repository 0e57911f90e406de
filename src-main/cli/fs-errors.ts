/**
 * File-system failures in words a person can act on, naming the path. Error codes such as ENOENT
 * mean nothing to most users; anything not listed keeps its code so it can still be looked up.
 */
export function fileProblem(path: string, err: unknown, verb: 'read' | 'write' | 'create' = 'read'): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? 'error';
  switch (code) {
    case 'ENOENT':
      return verb === 'read' ? `no file at ${path}` : `the folder for ${path} does not exist`;
    case 'EISDIR':
      return `${path} is a folder, not a file`;
    case 'ENOTDIR':
      return `${path}: part of this path is a file, not a folder`;
    case 'EACCES':
    case 'EPERM':
      return `no permission to ${verb} ${path}`;
    case 'ELOOP':
      return `${path}: too many symbolic links`;
    default:
      return `cannot ${verb} ${path} (${code})`;
  }
}
