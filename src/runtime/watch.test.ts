import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { startWatch } from './watch.js';

function kubeConfigFor(server: Server): KubeConfig {
  const kc = new KubeConfig();
  const { port } = server.address() as AddressInfo;
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

describe('startWatch', () => {
  test('a connection reset in the middle of a watch ends that watch with an error, not the process', async () => {
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(`${JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'a' } } })}\n{"type":"MODI`);
      setTimeout(() => res.socket?.resetAndDestroy(), 20);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const events: string[] = [];
      const handle = await startWatch({
        kubeConfig: kubeConfigFor(server),
        path: '/api/v1/namespaces',
        query: {},
        onEvent: (t) => events.push(t),
      });
      const err = await handle.done;
      expect(err?.message).toMatch(/aborted|reset/i);
      expect(events).toEqual(['ADDED']);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
