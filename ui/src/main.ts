import { createApp } from 'vue'
import App from './App.vue'
import { router } from './router'
import { auth } from './lib/api'
import { loadServices } from './lib/store'
import './style.css'

// Most visits land on the fleet overview: ask for the list while the app mounts.
if (auth.session) loadServices().catch(() => {})

createApp(App).use(router).mount('#app')
