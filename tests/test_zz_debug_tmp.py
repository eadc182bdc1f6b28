import threading, time, requests
from jupyter_serving import api
from tests.conftest import unique

def test_dbg(local_backend, sleep_model):
    c = api.ServingClient.connect()
    name = unique("dbg")
    c.create(name, model=sleep_model["name"], version=sleep_model["version"], workload_size="Small", timeout=180)
    url = f"{local_backend.url}/serving-endpoints/{name}/invocations"
    headers = {"Authorization": f"Bearer {local_backend.token}"}
    slow = {"dataframe_records": [{"x": 1.0}], "params": {"sleep_ms": 4000}}
    out = []
    def go():
        t=time.time(); r = requests.post(url, json=slow, headers=headers, timeout=30); out.append((r.status_code, r.text[:200], time.time()-t))
    ths = [threading.Thread(target=go) for _ in range(4)]
    for t in ths: t.start()
    time.sleep(0.5)
    t0=time.time()
    r = requests.post(url, json={"dataframe_records": [{"x": 1.0}]}, headers=headers, timeout=30)
    print("5th", r.status_code, r.text[:200], time.time()-t0)
    for t in ths: t.join()
    print(out)
    print(c.get(name).entities)
