import type { Readable } from 'node:stream';
import type { Backend, LogLevel } from '../backends/backend.js';
import { toBackendError } from '../backends/errors.js';
import { OrderedBackend } from '../backends/sequencer.js';
import { FrameWriter } from './frame-writer.js';
import { decodeBody, FrameDecoder, FrameError } from './frames.js';
import { callBackend, helloMessage, parseRequest, RequestError } from './messages.js';

export interface ServeOptions {
  /** Requests executing at once before input is paused (backpressure). */
  maxInFlight?: number;
}

/** How a served stream ended. */
export interface ServeResult {
  /** 0 after `close` or end of input, 1 when the stream had to be dropped. */
  exitCode: number;
}

/**
 * The server side of protocol.md: greets, answers requests (several in
 * flight, each taking effect in the order sent), and ends on `close` or end
 * of input after flushing and closing the backend.
 */
export async function serveBackend(backend: Backend, input: Readable, writer: FrameWriter, options: ServeOptions = {}): Promise<ServeResult> {
  const maxInFlight = options.maxInFlight ?? 256;
  const ordered = new OrderedBackend(backend);
  const decoder = new FrameDecoder();
  let inFlight = 0;
  let exitCode = 0;
  let closing = false;

  writer.write(helloMessage(backend.info()));

  const finished = new Promise<void>((resolveFinished) => {
    const finish = async (closeId?: number): Promise<void> => {
      if (closing) {
        if (closeId !== undefined) writer.write([closeId, 1, { code: 'badRequest', message: 'the stream is already closing' }]);
        return;
      }
      closing = true;
      input.pause();
      try {
        await ordered.close();
        if (closeId !== undefined) writer.write([closeId, 0, null]);
      } catch (err) {
        const error = toBackendError(err);
        if (closeId !== undefined) writer.write([closeId, 1, { code: error.code, message: error.message }]);
        else writer.write(['log', 'error', `close failed: ${error.message}`]);
        exitCode = 1;
      }
      resolveFinished();
    };

    const respond = (message: unknown): void => {
      writer.write(message);
      if (writer.congested && !input.isPaused()) {
        input.pause();
        void writer.drained().then(() => {
          if (!closing && inFlight < maxInFlight) input.resume();
        });
      }
    };

    const handle = (body: Buffer): void => {
      let request;
      try {
        request = parseRequest(decodeBody(body));
      } catch (err) {
        if (err instanceof RequestError && err.id !== null) {
          respond([err.id, 1, { code: err.code, message: err.message }]);
        } else {
          // No id to answer: report it as a notice and keep the stream.
          respond(['log', 'error', `badRequest: ${err instanceof Error ? err.message : String(err)}`]);
        }
        return;
      }
      if (request.op === 'close') {
        void finish(request.id);
        return;
      }
      inFlight += 1;
      if (inFlight >= maxInFlight) input.pause();
      callBackend(ordered, request).then(
        (result) => respond([request.id, 0, result ?? null]),
        (err: unknown) => {
          const error = toBackendError(err);
          respond([request.id, 1, { code: error.code, message: error.message }]);
        },
      ).finally(() => {
        inFlight -= 1;
        if (!closing && inFlight < maxInFlight && !writer.congested && input.isPaused()) input.resume();
      });
    };

    input.on('data', (chunk: Buffer) => {
      if (closing) return;
      let bodies: Buffer[];
      try {
        bodies = decoder.push(chunk);
      } catch (err) {
        // An impossible length: the stream cannot be resynchronised.
        const message = err instanceof FrameError ? err.message : String(err);
        writer.write(['log', 'error', `badRequest: ${message}; closing the stream`]);
        exitCode = 1;
        void finish();
        return;
      }
      for (const body of bodies) {
        if (closing) break;
        handle(body);
      }
    });
    input.on('end', () => {
      if (decoder.partial && !closing) writer.write(['log', 'warning', 'input ended inside a frame']);
      void finish();
    });
    input.on('error', () => {
      exitCode = 1;
      void finish();
    });
  });

  await finished;
  await writer.end();
  return { exitCode };
}

/** A log function that sends protocol notices through a writer. */
export function noticeLogger(writer: FrameWriter): (level: LogLevel, text: string) => void {
  return (level, text) => {
    writer.write(['log', level, text]);
  };
}
