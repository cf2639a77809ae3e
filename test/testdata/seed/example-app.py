# example-app.py
import os
import time
from watchdog.observers import Observer
from watchdog.events import FileSystemEventHandler

class SecretChangeHandler(FileSystemEventHandler):
    def on_modified(self, event):
        if event.src_path.endswith('/db-password'):
            print("Database password changed, reloading...")
            reload_db_connection()

def reload_db_connection():
    with open('/mnt/secrets/db-password', 'r') as f:
        new_password = f.read().strip()
    # Reconnect to database with new password
    global db_connection
    db_connection = connect_to_db(password=new_password)

# Watch secrets directory for changes
observer = Observer()
observer.schedule(SecretChangeHandler(), path='/mnt/secrets', recursive=False)
observer.start()

try:
    while True:
        time.sleep(1)
except KeyboardInterrupt:
    observer.stop()
observer.join()
