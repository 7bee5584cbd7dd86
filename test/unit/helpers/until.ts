/** Polls `get` every 25 ms until it returns a truthy value; rejects naming `what` after `ms`. */
export function until<T>(get: () => T | undefined | false, what: string, ms = 5000): Promise<T> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const tick = () => {
      const value = get();
      if (value) resolve(value);
      else if (Date.now() - start > ms) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(tick, 25);
    };
    tick();
  });
}
