export function freshBuild(root: string, out?: string): boolean;
