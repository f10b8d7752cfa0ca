"""One client's connection to the sim venue: where notifications are lost, late, doubled or
out of order.

A ``Link`` listens to the engine and keeps the events meant for its client until the client
``take``s them. The engine's books (orders, executions, positions) never suffer these faults:
a client that lost events recovers them by querying the books, as it would at a real broker.
Faces of the venue (the in-process broker port, later the TWS-API socket server) each hold a
link and call ``require`` before sending and ``take`` to receive; nothing here knows any client
library.

**Delivery.** An event the engine emits while the link is connected is *delivered*: ready for
``take``, in emission order. What was delivered stays readable after a disconnect, like bytes
already in a socket's receive buffer: ``take`` returns them, and only then raises
``VenueDisconnected``. ``connect`` opens a fresh connection and discards anything the old one
delivered that was never taken.

**Faults** (each armed on the link; one-shot faults count the events the engine emits while
the link is connected, and stay armed across a disconnect):

* ``disconnect()`` drops the connection. Events in flight (held back, or waiting for their
  swap partner) are lost, as is every event emitted while it is down; ``require`` and ``take``
  raise ``VenueDisconnected`` until ``connect()``.
* ``engine.restart()`` (the venue's nightly restart) disconnects every link, after the engine
  has cancelled the DAY orders.
* ``disconnect_after(n)``: the n-th next event is lost and the connection drops right after
  it ("disconnect mid-fill"): the n - 1 events before it are delivered.
* ``hold()`` / ``release()``: delay. While held, the events emitted queue in flight and
  ``take`` returns none of them; ``release`` delivers them in order. A disconnect while held
  loses them (the hold itself lasts until ``release``).
* ``reorder_next()``: the next two events are delivered swapped; the first waits in flight
  for the second (and is lost with the connection if that drops first).
* ``duplicate_next()``: the next event is delivered twice.

The engine's own faults (``reject_next``, ``duplicate_next_fill``) are faults of the venue, not
of the connection: they are recorded in its journal and every link sees them.
"""

from __future__ import annotations

from actors.domain import BrokerEvent

from .engine import Engine


class VenueDisconnected(ConnectionError):
    """Raised by a ``Link`` call while the link is disconnected; names the venue."""

    def __init__(self, venue: str) -> None:
        super().__init__(f"the {venue} venue is disconnected")
        self.venue = venue


class Link:
    """A connection from one client to ``engine``; connected from the start."""

    def __init__(self, engine: Engine, name: str = "sim") -> None:
        self.engine = engine
        self.name = name
        self._connected = True
        self._delivered: list[BrokerEvent] = []
        self._held: list[BrokerEvent] = []
        self._holding = False
        self._reorder = False
        self._waiting: BrokerEvent | None = None
        self._duplicate = False
        self._drop_countdown: int | None = None
        engine.listeners.append(self._on_event)
        engine.on_restart.append(self.disconnect)

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def quiet(self) -> bool:
        """Connected, nothing delivered and not yet taken, nothing held back, and no fault armed
        (a drop, a reorder, a duplicate, a hold): a ``take`` now returns nothing, and the next
        event will be delivered as it happens."""
        return (
            self._connected
            and not self._delivered
            and not self._held
            and not self._holding
            and self._waiting is None
            and not self._reorder
            and not self._duplicate
            and self._drop_countdown is None
        )

    # -- the client's side ----------------------------------------------------------------

    def require(self) -> None:
        """Raise ``VenueDisconnected`` if the link is down (call before sending)."""
        if not self._connected:
            raise VenueDisconnected(self.name)

    def take(self) -> list[BrokerEvent]:
        """The events delivered since the last call, in delivery order.

        While the link is down: what was delivered before the drop, then ``VenueDisconnected``.
        """
        if not self._connected and not self._delivered:
            raise VenueDisconnected(self.name)
        events = self._delivered
        self._delivered = []
        return events

    def connect(self) -> None:
        """Reconnect (a no-op when connected): a fresh connection, with nothing to read yet."""
        if not self._connected:
            self._connected = True
            self._delivered = []

    def close(self) -> None:
        """Stop listening to the engine (the link is of no further use)."""
        self.disconnect()
        if self._on_event in self.engine.listeners:
            self.engine.listeners.remove(self._on_event)
        if self.disconnect in self.engine.on_restart:
            self.engine.on_restart.remove(self.disconnect)

    # -- faults ---------------------------------------------------------------------------

    def disconnect(self) -> None:
        """Drop the connection; events in flight and events emitted while down are lost."""
        self._connected = False
        self._held = []
        self._waiting = None

    def disconnect_after(self, n: int) -> None:
        """Drop the connection right after the n-th next event (which is lost too)."""
        if n < 1:
            raise ValueError(f"disconnect_after needs n >= 1, got {n}")
        self._drop_countdown = n

    def hold(self) -> None:
        """Delay: keep events in flight until ``release``."""
        self._holding = True

    def release(self) -> None:
        """Deliver the held events, in order, and stop holding."""
        self._holding = False
        self._delivered.extend(self._held)
        self._held = []

    def reorder_next(self) -> None:
        """Deliver the next two events swapped."""
        self._reorder = True

    def duplicate_next(self) -> None:
        """Deliver the next event twice."""
        self._duplicate = True

    # -- internals --------------------------------------------------------------------------

    def _on_event(self, event: BrokerEvent) -> None:
        if not self._connected:
            return
        if self._drop_countdown is not None:
            self._drop_countdown -= 1
            if self._drop_countdown == 0:
                self._drop_countdown = None
                self.disconnect()
                return
        copies = [event, event] if self._duplicate else [event]
        self._duplicate = False
        for copy in copies:
            self._reordered(copy)

    def _reordered(self, event: BrokerEvent) -> None:
        if self._waiting is not None:
            waiting, self._waiting = self._waiting, None
            self._send(event)
            self._send(waiting)
        elif self._reorder:
            self._reorder = False
            self._waiting = event
        else:
            self._send(event)

    def _send(self, event: BrokerEvent) -> None:
        (self._held if self._holding else self._delivered).append(event)
