// ESM resolve hook of node_audit.mjs: runs on Node's loader thread.
import { fileURLToPath } from 'node:url';
import { record } from './node_record.mjs';

export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  try {
    if (context.parentURL && context.parentURL.startsWith('file:') && result.url.startsWith('file:')) {
      record(specifier, fileURLToPath(context.parentURL), fileURLToPath(result.url));
    }
  } catch { /* recording never breaks the program */ }
  return result;
}
