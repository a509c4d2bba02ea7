// A second Matrix client for timkit's interop tests: matrix-js-sdk with its Rust crypto
// (matrix-sdk-crypto-wasm), driven by tests/support/jspeer.py.
//
// Protocol: one JSON command per line on stdin ({"cmd": "...", ...args}), one JSON result
// per line on stdout, in order. Failures are {"error": "...", "status": N} (status is the
// homeserver's HTTP status, 0 when there was none). Logs go to stderr only.
// TLS: the driver sets NODE_EXTRA_CA_CERTS to the federation's CA.

import { createInterface } from "node:readline";

// stdout carries the protocol: send every console method (the SDK logs through loglevel,
// which uses console.log/info/debug) to stderr before the SDK is loaded.
for (const method of ["log", "info", "debug", "warn", "trace"]) {
  console[method] = (...args) => console.error(...args);
}
const sdk = await import("matrix-js-sdk");

const ROOM_TYPE = "de.gematik.tim.roomtype.default.v1";
const ROOM_STATE = "de.gematik.tim.room.default.v1";
const POLL_MS = 100; // how often wait_* commands look at the client's state

let client = null; // the logged-in MatrixClient

/** Resolve once check() returns something truthy; reject after timeout seconds. */
async function waitFor(check, what, timeout = 30) {
  const deadline = Date.now() + timeout * 1000;
  for (;;) {
    const found = await check();
    if (found) return found;
    if (Date.now() > deadline) {
      const detail = typeof what === "function" ? what() : what;
      throw Object.assign(new Error(`timed out waiting for ${detail}`), { status: 0 });
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function loggedIn() {
  if (!client) throw Object.assign(new Error("not logged in"), { status: 0 });
  return client;
}

/** Wait until the sync shows the room joined and (for encrypted rooms) its encryption state. */
async function roomReady(roomId, timeout) {
  await waitFor(
    async () =>
      client.getRoom(roomId)?.getMyMembership() === "join" &&
      (await client.getCrypto().isEncryptionEnabledInRoom(roomId)),
    `room ${roomId} joined and encrypted`,
    timeout,
  );
}

const commands = {
  // Password login, then Rust crypto (in-memory store: no IndexedDB in Node) and a sync loop.
  async login({ base_url, user, password }) {
    const anonymous = sdk.createClient({ baseUrl: base_url });
    const session = await anonymous.loginRequest({
      type: "m.login.password",
      identifier: { type: "m.id.user", user },
      password,
      initial_device_display_name: "timkit jspeer",
    });
    client = sdk.createClient({
      baseUrl: base_url,
      userId: session.user_id,
      deviceId: session.device_id,
      accessToken: session.access_token,
    });
    await client.initRustCrypto({ useIndexedDB: false });
    const prepared = new Promise((resolve) => {
      client.on(sdk.ClientEvent.Sync, (state) => state === "PREPARED" && resolve());
    });
    await client.startClient({ initialSyncLimit: 20 });
    await prepared;
    return { user_id: session.user_id, device_id: session.device_id };
  },

  // A TI-M DM: one invitee, is_direct, encrypted from the start, TI-M room type and state.
  async create_dm({ invite }) {
    const c = loggedIn();
    const { room_id } = await c.createRoom({
      is_direct: true,
      invite: [invite],
      preset: "trusted_private_chat",
      creation_content: { type: ROOM_TYPE },
      initial_state: [
        { type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } },
        { type: ROOM_STATE, state_key: "", content: {} },
      ],
    });
    const direct = c.getAccountData("m.direct")?.getContent() ?? {};
    await c.setAccountData("m.direct", { ...direct, [invite]: [...(direct[invite] ?? []), room_id] });
    await roomReady(room_id);
    return { room_id };
  },

  async join({ room_id }) {
    await loggedIn().joinRoom(room_id);
    await roomReady(room_id);
    return { room_id };
  },

  // Encrypted by the SDK when the room is (it shares the Megolm session with every device).
  async send({ room_id, body }) {
    const { event_id } = await loggedIn().sendMessage(room_id, { msgtype: "m.text", body });
    return { event_id };
  },

  // The first text message in room_id with this body, once decrypted (or failed to decrypt).
  async wait_message({ room_id, body, timeout = 30 }) {
    const c = loggedIn();
    const event = await waitFor(
      () =>
        c
          .getRoom(room_id)
          ?.getLiveTimeline()
          .getEvents()
          .find((e) => !e.isBeingDecrypted() && e.getContent().body === body),
      () => {
        const events = c.getRoom(room_id)?.getLiveTimeline().getEvents() ?? [];
        const failed = events.filter((e) => e.isDecryptionFailure()).length;
        return `message "${body}" in ${room_id} (${failed} events failed to decrypt)`;
      },
      timeout,
    );
    return {
      event_id: event.getId(),
      sender: event.getSender(),
      body: event.getContent().body,
      encrypted: event.isEncrypted(),
      decrypted: event.isEncrypted() && event.getClearContent() !== null,
    };
  },

  async wait_invite({ timeout = 30 }) {
    const c = loggedIn();
    const room = await waitFor(
      () => c.getRooms().find((r) => r.getMyMembership() === "invite"),
      "an invite",
      timeout,
    );
    return { room_id: room.roomId, inviter: room.getDMInviter() ?? null };
  },

  async stop() {
    client?.stopClient();
    return { stopped: true };
  },
};

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  let result;
  let command;
  try {
    command = JSON.parse(line);
    const handler = commands[command.cmd];
    if (!handler) throw Object.assign(new Error(`unknown command: ${command.cmd}`), { status: 0 });
    result = await handler(command);
  } catch (error) {
    // MatrixError carries httpStatus and errcode; everything else has status 0
    result = {
      error: error.errcode ? `${error.errcode}: ${error.data?.error ?? error.message}` : String(error.message ?? error),
      status: error.httpStatus ?? error.status ?? 0,
    };
    console.error(error);
  }
  process.stdout.write(JSON.stringify(result) + "\n");
  if (command?.cmd === "stop") break;
}
process.exit(0);
