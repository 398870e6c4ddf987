"""The "Done when" of the web issue, checked by a test instead of by hand:

    A new user runs `make run` (``cartkeeper dev --simulate``), opens the printed admin
    URL, logs in with the printed development credentials, sees the demo's locked carts on
    the dashboard, confirms one and watches it become a numbered order.

So the test does just that. It starts ``cartkeeper dev --simulate`` as a real process (the
``cartkeeper`` script next to this Python, as ``make run`` does) in a temporary directory
that is its data directory, on free ports (gRPC, Temporal UI, web, mail catcher) so it
runs beside the suite's own Temporal dev server, and reads its standard output line by
line until the banner names the admin console, its user and password: it knows nothing
else, as a user knows nothing else. Then Chromium (Playwright, ``tests.browser``) opens
that URL, signs in with them, reloads the dashboard until the demo's locked carts are
there, opens the one whose gateway never answered (the demo's own orders part makes the
other locked cart, the one with a pending payment, an order by itself, so a user's
confirmation of that one could race it; the README leaves the silent one to the user),
presses "Confirm order" and reads the workflow's answer: an order with its number. The
cart's page and ``cartkeeper carts show --json`` against the same dev server then say
the cart is ordered with that number. At the end the process gets SIGINT, as Ctrl-C, and
must stop (the Temporal server it started too) within 30 s with exit code 0, also when
the test failed. Screenshots go to ``test-artifacts/dev-done-when-*.png``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
from playwright.async_api import Page, expect

from tests.browser import chromium, screenshot

#: the shop the demo fills (the settings' ``default_shop``; the dashboard shows it first)
SHOP = "demo"
#: the demo's timers divided by this: its silent gateway's cart locks after 2 s, not 10
SPEED = 5
#: seconds until the banner: the Temporal server's first start on a new file, migrations
BANNER_WAIT = 120.0
#: seconds the dashboard may take to show the locked cart (polled with reloads)
LOCKED_WAIT = 90.0
#: seconds ``cartkeeper dev`` may take to stop after Ctrl-C
STOP_WAIT = 30.0
#: the lock reason of the demo's cart whose gateway never answered (``-005``)
SILENT_GATEWAY = "no_payment_result"

ADMIN_LINE = re.compile(
    r"^\s*admin console\s+(?P<url>http://\S+/admin)\s+"
    r"\(user (?P<user>[^,\s]+), password (?P<password>[^;\s]+);"
)
GRPC_LINE = re.compile(r"^\s*Temporal gRPC\s+(?P<address>\S+)\s")
READ_MODEL_LINE = re.compile(r"^\s*read model\s+(?P<url>\S+)")
WEB_LINE = re.compile(r"^\s*web endpoint\s+(?P<rest>.*)$")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cartkeeper() -> list[str]:
    """The ``cartkeeper`` script of this venv (``make run`` runs ``.venv/bin/cartkeeper``)."""
    script = Path(sys.executable).parent / "cartkeeper"
    return [str(script)] if script.exists() else [sys.executable, "-m", "starter.cli"]


def _environment(data_dir: Path, web_port: int, smtp_port: int) -> dict[str, str]:
    """This environment without the outer shell's cartkeeper, Temporal and database
    settings, plus the data directory and the free ports of this run."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("CARTKEEPER_", "TEMPORAL_")) and name != "DATABASE_URL"
    }
    env.update(
        CARTKEEPER_DATA_DIR=str(data_dir),
        CARTKEEPER_WEB_PORT=str(web_port),
        CARTKEEPER_SMTP_PORT=str(smtp_port),
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass
class Banner:
    admin_url: str
    user: str
    password: str
    grpc: str
    read_model: str


@dataclass
class DevRun:
    """``cartkeeper dev --simulate`` running, and what it printed so far."""

    process: asyncio.subprocess.Process
    cwd: Path
    env: dict[str, str]
    stderr_file: Path
    lines: list[str] = field(default_factory=list)
    news: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        """Every line of its standard output, as they come (the pipe never fills up)."""
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\r\n"))
            self.news.set()
        self.news.set()

    def output(self, last: int = 80) -> str:
        try:
            err = self.stderr_file.read_text(errors="replace").splitlines()[-last:]
        except OSError:
            err = []
        return (
            "--- stdout ---\n"
            + "\n".join(self.lines[-last:])
            + "\n--- stderr ---\n"
            + "\n".join(err)
        )

    def find(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        for line in self.lines:
            found = pattern.search(line)
            if found:
                return found
        return None

    async def banner(self, within: float) -> Banner:
        """The banner's admin console, credentials and addresses, read from the output."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            self.news.clear()
            admin = self.find(ADMIN_LINE)
            if admin is not None:
                break
            if self.process.returncode is not None or (
                self.reader is not None and self.reader.done()
            ):
                pytest.fail(
                    f"cartkeeper dev exited ({self.process.returncode}) before its banner:\n"
                    + self.output()
                )
            left = deadline - loop.time()
            if left <= 0:
                pytest.fail(
                    f"no admin console in the banner within {within:.0f}s:\n{self.output()}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.news.wait(), min(left, 1.0))
        grpc = self.find(GRPC_LINE)
        read_model = self.find(READ_MODEL_LINE)
        assert grpc is not None and read_model is not None, self.output()
        return Banner(
            admin_url=admin["url"],
            user=admin["user"],
            password=admin["password"],
            grpc=grpc["address"],
            read_model=read_model["url"],
        )

    async def cli(self, *args: str, within: float = 60.0) -> tuple[int, str, str]:
        """``cartkeeper ARGS`` in the same directory and environment, as in another
        terminal."""
        process = await asyncio.create_subprocess_exec(
            *_cartkeeper(),
            *args,
            cwd=str(self.cwd),
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), within)
        except TimeoutError:
            process.kill()
            await process.wait()
            pytest.fail(f"cartkeeper {' '.join(args)} did not answer within {within:.0f}s")
        assert process.returncode is not None
        return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")


async def _stop(run: DevRun) -> tuple[int, list[str]]:
    """Ctrl-C (SIGINT), as a user stops it; if it is still running after ``STOP_WAIT``,
    SIGTERM (a second signal: it kills its Temporal server and exits at once), then
    SIGKILL for it and what it started. Returns its exit code and what went wrong."""
    problems: list[str] = []
    process = run.process
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), STOP_WAIT)
        except TimeoutError:
            problems.append(f"still running {STOP_WAIT:.0f}s after SIGINT")
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                problems.append("still running 10s after SIGTERM: killed")
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
    if run.reader is not None:
        try:
            await asyncio.wait_for(run.reader, 10)
        except TimeoutError:
            run.reader.cancel()
            problems.append("its standard output stayed open after it exited")
    # What it started (the Temporal dev server) must be gone too.
    _gone, alive = psutil.wait_procs(children, timeout=10)
    for child in alive:
        problems.append(f"left running: pid {child.pid} {child.name()}")
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    assert process.returncode is not None
    return process.returncode, problems


@pytest.fixture
async def dev_run(tmp_path: Path) -> AsyncIterator[DevRun]:
    """``cartkeeper dev --simulate`` in ``tmp_path`` on free ports; stopped at the end
    (checked: within ``STOP_WAIT`` of Ctrl-C, exit code 0)."""
    data_dir = tmp_path / "data"
    env = _environment(data_dir, web_port=_free_port(), smtp_port=_free_port())
    stderr_file = tmp_path / "dev.stderr"
    command = [
        *_cartkeeper(),
        "dev",
        "--simulate",
        "--port",
        str(_free_port()),
        "--ui-port",
        str(_free_port()),
        "--speed",
        str(SPEED),
    ]
    with stderr_file.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=str(tmp_path),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
    run = DevRun(process, tmp_path, env, stderr_file)
    run.reader = asyncio.create_task(run.read(), name="cartkeeper dev stdout")
    try:
        yield run
    finally:
        code, problems = await _stop(run)
    assert not problems, "\n".join(problems) + "\n" + run.output()
    assert code == 0, f"cartkeeper dev exited with {code}:\n{run.output()}"
    assert any(line.startswith("stopped (server exit code") for line in run.lines), run.output()


async def _sign_in(page: Page, banner: Banner) -> None:
    await page.goto(banner.admin_url)
    await expect(page).to_have_url(re.compile(r"/admin/login"))  # not signed in yet
    await screenshot(page, "dev-done-when-login")
    await page.get_by_label("User name").fill(banner.user)
    await page.get_by_label("Password").fill(banner.password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(re.compile(r"/admin$"))


async def _locked_cart(page: Page) -> str:
    """Reload the dashboard until its "Locked carts" widget lists the demo's cart whose
    gateway never answered; its id."""
    locked = page.locator("#locked-carts")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LOCKED_WAIT
    while True:
        rows = locked.locator("tbody tr")
        for row in await rows.all():
            text = await row.inner_text()
            if SILENT_GATEWAY in text and "locked" in text:
                return (await row.get_by_role("link").first.inner_text()).strip()
        if loop.time() >= deadline:
            await screenshot(page, "dev-done-when-no-locked-cart")
            pytest.fail(
                f"no locked cart ({SILENT_GATEWAY}) on the dashboard within"
                f" {LOCKED_WAIT:.0f}s:\n{await locked.inner_text()}"
            )
        await asyncio.sleep(2)
        await page.reload()


# above every wait added up (banner, dashboard, CLI, the stop's three), so the
# fixture's teardown always stops what the test started
@pytest.mark.timeout(480)
async def test_a_new_user_confirms_a_demo_locked_cart_in_the_console(
    dev_run: DevRun, tmp_path: Path
) -> None:
    banner = await dev_run.banner(BANNER_WAIT)
    # Its data stays in the temporary directory, not in the repository's data/.
    here = await asyncio.to_thread(tmp_path.resolve)
    assert str(here) in banner.read_model, banner.read_model
    web = dev_run.find(WEB_LINE)
    assert web is not None and "not started" not in web["rest"], dev_run.output()

    async with chromium() as browser:
        context = await browser.new_context()
        page = await context.new_page()
        try:
            await _sign_in(page, banner)
            await expect(page.locator("h1")).to_contain_text(f"shop {SHOP}")
            cart_id = await _locked_cart(page)
            assert cart_id.startswith("sim-"), cart_id  # one of the demo's carts
            locked = page.locator("#locked-carts")
            await expect(locked.locator("h2 .count")).not_to_have_text("0")
            await screenshot(page, "dev-done-when-dashboard")

            await locked.get_by_role("link", name=cart_id, exact=True).click()
            await expect(page.get_by_role("heading", level=1)).to_contain_text(cart_id)
            await expect(page.locator(".heading .state")).to_have_text("locked")
            await screenshot(page, "dev-done-when-cart-locked")

            await page.get_by_role("button", name="Confirm order").click()
            flash = page.locator(".flash.ok")
            await expect(flash).to_contain_text(re.compile(r"Confirmed: order \d+ "))
            found = re.search(r"Confirmed: order (\d+) ", await flash.inner_text())
            assert found is not None
            number = int(found.group(1))
            await expect(page.locator(".heading .state")).to_have_text("ordered")
            await expect(page.locator("body")).to_contain_text(f"Order {number}")
            await screenshot(page, "dev-done-when-cart-confirmed")
        finally:
            await context.close()

    # The cart's workflow says the same, asked from "another terminal".
    code, out, err = await dev_run.cli(
        "--address", banner.grpc, "carts", "show", cart_id, "--shop", SHOP, "--json"
    )
    assert code == 0, f"{out}\n{err}"
    cart: dict[str, Any] = json.loads(out)
    assert cart["source"] == "workflow"
    assert (cart["cart_id"], cart["shop_id"], cart["state"]) == (cart_id, SHOP, "ordered")
    assert cart["order"] is not None and cart["order"]["number"] == number, cart["order"]
