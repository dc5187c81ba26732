"""A small flow through the Python client generated from the served OpenAPI
document (openapi-python-client): sign up, create an organization, a board,
a list and two tasks, then list and filter tasks. It fails on any answer
the document did not promise (the client parses every answer into the
documented model) and on any unexpected value.

Usage: python api_client_flow.py BASE_URL   (the client package on sys.path;
generated with `literal_enums: true`, so enum values are plain strings)
"""

import sys
import uuid

from orgboard_client import AuthenticatedClient, Client
from orgboard_client.api.auth import me, signup
from orgboard_client.api.boards import create_board, get_board
from orgboard_client.api.lists import create_list
from orgboard_client.api.orgs import create_org, list_orgs
from orgboard_client.api.tasks import create_task, list_tasks
from orgboard_client.models import (
    Board,
    BoardView,
    CreateBoardBody,
    CreateOrgBody,
    CreateTaskBody,
    List,
    ListBody,
    Org,
    OrgPage,
    Problem,
    Session,
    SignupBody,
    Task,
    TaskPage,
    User,
)


def ok(response, status, model):
    """The answer has the expected status and parsed into the documented model."""
    assert response.status_code == status, (
        f"expected {status}, got {response.status_code}: {response.content!r}"
    )
    assert isinstance(response.parsed, model), f"not a {model.__name__}: {response.parsed!r}"
    return response.parsed


def main(base_url: str) -> None:
    anonymous = Client(base_url=base_url, raise_on_unexpected_status=True)
    run = uuid.uuid4().hex[:12]
    email = f"client-{run}@example.com"
    slug = f"client-{run}"
    body = SignupBody(email=email, password="correct horse battery", name="Client Flow")
    session = ok(signup.sync_detailed(client=anonymous, body=body), 201, Session)
    assert session.user.email == email and session.token_type == "Bearer", session

    client = AuthenticatedClient(
        base_url=base_url, token=session.access_token, raise_on_unexpected_status=True
    )
    assert ok(me.sync_detailed(client=client), 200, User).id == session.user.id

    org = ok(
        create_org.sync_detailed(client=client, body=CreateOrgBody(name="Client Org", slug=slug)),
        201,
        Org,
    )
    assert org.slug == slug and org.name == "Client Org", org
    again = create_org.sync_detailed(client=client, body=CreateOrgBody(name="Again", slug=slug))
    problem = ok(again, 409, Problem)
    assert problem.status == 409 and problem.code, problem

    mine = ok(list_orgs.sync_detailed(client=client), 200, OrgPage)
    assert any(o.id == org.id for o in mine.items), mine

    board = ok(
        create_board.sync_detailed(org=org.slug, client=client, body=CreateBoardBody(name="Roadmap")),
        201,
        Board,
    )
    todo = ok(
        create_list.sync_detailed(org=org.slug, board=board.id, client=client, body=ListBody(name="To do")),
        201,
        List,
    )
    first = ok(
        create_task.sync_detailed(
            org=org.slug,
            list_=todo.id,
            client=client,
            body=CreateTaskBody(title="Write the client flow", priority="high"),
            idempotency_key="client-flow-1",
        ),
        201,
        Task,
    )
    replay = ok(
        create_task.sync_detailed(
            org=org.slug,
            list_=todo.id,
            client=client,
            body=CreateTaskBody(title="Write the client flow", priority="high"),
            idempotency_key="client-flow-1",
        ),
        201,
        Task,
    )
    assert replay.id == first.id, (replay, first)
    second = ok(
        create_task.sync_detailed(
            org=org.slug, list_=todo.id, client=client, body=CreateTaskBody(title="Ship it", status="done")
        ),
        201,
        Task,
    )
    assert first.status == "todo" and first.priority == "high", first
    assert second.status == "done" and second.list_id == todo.id, second

    page = ok(list_tasks.sync_detailed(org=org.slug, client=client, board_id=board.id), 200, TaskPage)
    assert [t.id for t in page.items] == [first.id, second.id], page
    assert not page.next_cursor, page

    done = ok(
        list_tasks.sync_detailed(org=org.slug, client=client, status=["done"], limit=1),
        200,
        TaskPage,
    )
    assert [t.id for t in done.items] == [second.id], done

    paged = ok(list_tasks.sync_detailed(org=org.slug, client=client, limit=1), 200, TaskPage)
    assert len(paged.items) == 1 and paged.next_cursor, paged
    rest = ok(
        list_tasks.sync_detailed(org=org.slug, client=client, limit=1, cursor=paged.next_cursor),
        200,
        TaskPage,
    )
    assert [t.id for t in rest.items] == [second.id], rest

    view = ok(get_board.sync_detailed(org=org.slug, board=board.id, client=client), 200, BoardView)
    assert [t.id for t in view.lists[0].tasks] == [first.id, second.id], view

    missing = list_tasks.sync_detailed(org=org.slug, client=client, limit=500)
    problem = ok(missing, 422, Problem)
    assert problem.code == "validation_failed", problem
    print(f"client flow passed against {base_url}")


if __name__ == "__main__":
    main(sys.argv[1])
